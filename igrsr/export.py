"""A trained run as a self-contained scorer for serving: ``igrsr export RUN_DIR --out DIR``.

The scorer maps a batch of left-padded histories (``(B, max_len)`` int64 item numbers, 0 =
padding, the most recent item last; and, for a personalized model such as SSE-PT, the users'
indices ``(B,)``) to the top ``k`` item numbers and their scores, ``(B, k)`` int64 and float32.
Padding is never recommended; by default neither is an item of the history given.  ``DIR``
holds

* ``scorer.pt2``: the :func:`torch.export.export` program (batch size dynamic), loaded with
  ``torch.export.load`` alone, without igrsr;
* ``scorer.onnx``: the same program in ONNX, where the ``onnx`` and ``onnxscript`` packages are
  installed (``pip install igrsr[onnx]``);
* ``ids.json``: the file's own ids: ``items[i]`` is item number ``i`` (``items[0]``, padding,
  is null), ``users[u]`` is user index ``u``;
* ``scorer.json``: what the scorer is (model, run, k, max_len, inputs, outputs) and how to call it.

The folder is written whole or not at all; an existing export in ``DIR`` is replaced.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .data import InteractionData, Split, leave_one_out, pad_left
from .models import SequentialRecommender
from .models.registry import model_entry
from .train.runs import load_best, run_description

PROGRAM, ONNX, IDS, DESCRIPTION = "scorer.pt2", "scorer.onnx", "ids.json", "scorer.json"
EXAMPLE_USERS = 3  # histories the program is traced with (a batch of 1 would be specialized)


class TopK(nn.Module):
    """``(history[, users]) -> (items, scores)``: the ``k`` best items after each history."""

    def __init__(self, model: SequentialRecommender, k: int, personalized: bool, exclude_history: bool = True):
        super().__init__()
        if not 1 <= k <= model.num_items:
            raise ValueError(f"k must be in [1, {model.num_items}] (the catalog), got {k}")
        self.model, self.k, self.personalized, self.exclude_history = model, k, personalized, exclude_history

    def forward(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        scores = self.model.score(history, users).float()
        seen = torch.zeros_like(scores, dtype=torch.bool)
        seen[:, 0] = True  # padding
        if self.exclude_history:
            seen = seen.scatter(1, history, True)
        scores, items = scores.masked_fill(seen, float("-inf")).topk(self.k, dim=1)
        return items, scores


def example_inputs(split: Split, model: SequentialRecommender, personalized: bool) -> Tuple[torch.Tensor, ...]:
    """Real test histories of the first users, padded as the scorer takes them."""
    users = list(range(min(EXAMPLE_USERS, split.num_users)))
    history = pad_left([split.test_history[u] for u in users], model.max_len)
    return (history, torch.tensor(users)) if personalized else (history,)


def id_maps(data: InteractionData, split: Split) -> Dict[str, List[Any]]:
    """Item number -> the file's item id (0, padding: None); user index -> the file's user id."""
    items = data.item_ids.tolist()
    return {"items": [None, *items[1:]], "users": [data.user_ids[index] for index in split.user_index.tolist()]}


def export_run(
    run_dir: Path, data: InteractionData, out: Path, k: int = 10, exclude_history: bool = True
) -> Dict[str, Any]:
    """Export the best model of ``run_dir`` (trained on ``data``) into ``out``; returns the
    description written to ``scorer.json``."""
    run_dir, out = Path(run_dir), Path(out)
    check_out(out)
    description = run_description(run_dir)
    personalized = model_entry(description["model"]).personalized
    split = leave_one_out(data)
    model, best_epoch = load_best(run_dir, data, split, "cpu")
    scorer = TopK(model.eval(), k, personalized, exclude_history)
    inputs = example_inputs(split, model, personalized)
    batch = torch.export.Dim("batch")
    shapes = ({0: batch}, {0: batch}) if personalized else ({0: batch},)
    with torch.no_grad():
        program = torch.export.export(scorer, inputs, dynamic_shapes=shapes)
    files = {PROGRAM: program_bytes(program), IDS: json_bytes(id_maps(data, split))}
    onnx_note = None
    if onnx_available():
        files[ONNX] = onnx_bytes(scorer, inputs, shapes)
    else:
        onnx_note = "ONNX skipped: it needs the onnx and onnxscript packages (pip install igrsr[onnx])"
    about = describe(description, run_dir, model, k, exclude_history, personalized, best_epoch, sorted(files))
    files[DESCRIPTION] = json_bytes(about)
    write_folder(out, files)
    if onnx_note:
        print(onnx_note)
    return about


def describe(description, run_dir, model, k, exclude_history, personalized, best_epoch, files) -> Dict[str, Any]:
    inputs = [{"name": "history", "dtype": "int64", "shape": ["batch", model.max_len],
               "means": "item numbers (ids.json items), left-padded with 0, the most recent last"}]  # fmt: skip
    if personalized:
        inputs.append({"name": "users", "dtype": "int64", "shape": ["batch"], "means": "user indices (ids.json users)"})
    call = "history, users" if personalized else "history"
    return {
        "model": description["model"],
        "run_dir": str(run_dir),
        "run": run_dir.name,
        "best_epoch": best_epoch,
        "data": {key: description["data"].get(key) for key in ("name", "users", "items", "fingerprint")},
        "k": k,
        "max_len": model.max_len,
        "num_items": model.num_items,
        "exclude_history": exclude_history,
        "inputs": inputs,
        "outputs": [
            {"name": "items", "dtype": "int64", "shape": ["batch", k], "means": "item numbers, best first"},
            {"name": "scores", "dtype": "float32", "shape": ["batch", k], "means": "their scores"},
        ],
        "files": [*files, DESCRIPTION],
        "torch": torch.__version__,
        "usage": f"items, scores = torch.export.load('{PROGRAM}').module()({call}); "
        f"json.load(open('{IDS}'))['items'][i] is item number i's id",
    }


def check_out(out: Path) -> None:
    """``out`` must be new, empty, or an earlier export (which is replaced)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / DESCRIPTION).exists())):
        raise ValueError(f"{out} exists and is not an earlier export (no {DESCRIPTION}); give a new folder as --out")


def write_folder(out: Path, files: Dict[str, bytes]) -> None:
    """Write ``files`` into a temporary folder beside ``out``, then put it in ``out``'s place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    except OSError as error:  # the message names the folder asked for, not its temporary name
        raise type(error)(error.errno, error.strerror, str(out)) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; an export is an ordinary folder
        for name, blob in files.items():
            (staging / name).write_bytes(blob)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def program_bytes(program) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=1).encode("utf-8")


def onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def onnx_bytes(scorer: TopK, inputs, shapes) -> bytes:
    names = ["history", "users"][: len(inputs)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ONNX
        torch.onnx.export(
            scorer, inputs, path, input_names=names, output_names=["items", "scores"],
            dynamic_shapes=shapes, external_data=False, verbose=False,
        )  # fmt: skip
        return path.read_bytes()


__all__ = ["TopK", "export_run", "id_maps"]
