"""The top-K items for every user of a data file: ``igrsr recommend RUN_DIR --data PATH --k K --out FILE``.

Each user's history is their **whole sequence in the file** (what the run trained, validated
and tested on), so the recommendations are what comes after everything the user has done;
the model reads its last ``max_len`` items, and the items of the whole sequence are left out
unless ``keep_seen``.  The users are those the run knows (the file's users with at least 3
interactions, as training split them), or the ones listed.  Output, with the file's own user
and item ids, one row per (user, rank), rank 1 the best:

* ``.csv``: ``user,rank,item,score`` (scores printed so that they read back as the same float32);
* ``.parquet``: the same columns (needs pyarrow: ``pip install igrsr[parquet]``).

Users are scored in batches and the catalog in chunks (:func:`igrsr.eval.top_k`), and rows are
written as each batch is done, so memory stays bounded whatever the number of users and items;
the file appears whole, when the last batch is written, or not at all.  Ties between equal
scores go to the lower item number (the file's order of item ids).
"""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path
from typing import Any, BinaryIO, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import DataFormatError, InteractionData, leave_one_out, pad_left
from .eval import SeenItems, top_k
from .models.registry import model_entry
from .train.checkpoint import save_stream
from .train.runs import load_best, run_description

FORMATS = (".csv", ".parquet")
COLUMNS = ("user", "rank", "item", "score")
DEFAULT_BATCH_USERS = 256


def output_format(out: Path) -> str:
    """``.csv`` or ``.parquet`` from ``out``'s extension; Parquet only where pyarrow is installed."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"--out {out}: the file's extension must be .csv or .parquet, got {suffix or 'none'!r}")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(f"--out {out}: writing Parquet needs pyarrow (pip install igrsr[parquet]), or write a .csv")
    return suffix


def read_user_list(path: Path, user_ids: Sequence[Any]) -> np.ndarray:
    """User indices of the ids in ``path`` (one per line, the file's own ids; blank lines skipped)."""
    index = {str(user): position for position, user in enumerate(user_ids)}
    users = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            token = line.strip()
            if not token:
                continue
            if token not in index:
                raise DataFormatError(path, f"unknown user id {token!r}: not a user of the run's data", line_number)
            users.append(index[token])
    if not users:
        raise DataFormatError(path, "lists no user id (one per line)")
    return np.asarray(users, dtype=np.int64)


def recommend_run(
    run_dir: Path,
    data: InteractionData,
    out: Path,
    k: int = 10,
    users_file: Optional[Path] = None,
    keep_seen: bool = False,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_USERS,
    chunk_size: Optional[int] = None,
    progress: bool = True,
) -> int:
    """Write the top ``k`` of the users of ``data`` under the best model of ``run_dir`` into
    ``out`` (see the module's description); returns the number of users written."""
    out, run_dir = Path(out), Path(run_dir)
    suffix = output_format(out)
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got {k} and {batch_size}")
    personalized = model_entry(run_description(run_dir)["model"]).personalized
    split = leave_one_out(data)
    model, _ = load_best(run_dir, data, split, device)
    model.eval()
    user_ids = [data.user_ids[index] for index in split.user_index.tolist()]
    users = np.arange(split.num_users) if users_file is None else read_user_list(users_file, user_ids)
    sequences = [data.sequences[index] for index in split.user_index.tolist()]
    batches = recommended_batches(model, sequences, users, k, keep_seen, personalized, device, batch_size, chunk_size)
    rows = named_rows(tqdm(batches, total=-(-len(users) // batch_size), disable=not progress, desc="recommend"),
                      user_ids, data.item_ids)  # fmt: skip
    save_stream(out, lambda handle: (write_csv if suffix == ".csv" else write_parquet)(handle, rows))
    return len(users)


def recommended_batches(
    model, sequences, users, k, keep_seen, personalized, device, batch_size, chunk_size
) -> Iterator[Tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """``(users, items, scores)`` of each batch of users: item numbers and scores ``(b, k)``."""
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            histories = [sequences[user] for user in batch]
            history = pad_left(histories, model.max_len).to(device)
            batch_users = torch.from_numpy(batch).to(device) if personalized else None
            seen = None if keep_seen else SeenItems.from_histories(histories, torch.device(device))
            items, scores = top_k(model.item_scores(history, batch_users), k, seen, chunk_size)
            yield batch, items.cpu(), scores.cpu()


def named_rows(batches, user_ids: Sequence[Any], item_ids: np.ndarray) -> Iterator[Tuple[List, List, List, List]]:
    """Each batch as columns ``user, rank, item, score`` in the file's ids; padding (fewer
    candidates than ``k``) left out."""
    for users, items, scores in batches:
        real = items > 0
        rows, ranks = torch.nonzero(real, as_tuple=True)
        yield (
            [user_ids[user] for user in users[rows.numpy()].tolist()],
            (ranks + 1).tolist(),
            item_ids[items[real].numpy()].tolist(),
            scores[real].numpy(),
        )


def write_csv(handle: BinaryIO, rows) -> None:
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for users, ranks, items, scores in rows:
        # str() of a float32 is the shortest text that reads back as the same float32.
        writer.writerows(zip(users, ranks, items, map(str, scores)))
    text.flush()
    text.detach()


def write_parquet(handle: BinaryIO, rows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for users, ranks, items, scores in rows:
        table = pa.table({"user": users, "rank": pa.array(ranks, pa.int32()), "item": items, "score": scores})
        if writer is None:
            writer = pq.ParquetWriter(handle, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()
