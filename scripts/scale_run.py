"""SASRec on a 1,000,000-item catalog: one epoch and a full evaluation on this machine.

    python scripts/scale_run.py --out reports/scale/1m-full [--option loss=sampled-softmax ...]

The data are synthetic: ``--users`` users (default 4,000) with histories of 50 to 60 items
drawn from a Zipf-like popularity over the whole catalog (p(rank r) ∝ r^-a), most items never
seen, as in a real long-tail catalog.  The model trains ``--epochs`` epochs (default 1) and is
evaluated by full ranking of every user over every item; ``result.json`` in ``--out`` records
the metrics, the seconds per epoch and the process's peak resident memory, and the command.
``--option NAME=VALUE`` (repeatable) sets a SASRec option, e.g. the catalog loss.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from igrsr.data import InteractionData, leave_one_out
from igrsr.models.registry import build_model, model_config
from igrsr.train.checkpoint import save_json
from igrsr.train.config import TrainConfig
from igrsr.train.trainer import Trainer


def zipf_histories(num_users: int, num_items: int, lengths: tuple, exponent: float, seed: int) -> InteractionData:
    """Histories drawn i.i.d. from a Zipf-like popularity over items shuffled to random ids."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, num_items + 1, dtype=np.float64) ** -exponent
    cumulative = np.cumsum(weights / weights.sum())
    item_of_rank = rng.permutation(num_items) + 1
    sizes = rng.integers(lengths[0], lengths[1] + 1, size=num_users)
    ranks = np.minimum(np.searchsorted(cumulative, rng.random(int(sizes.sum()))), num_items - 1)
    items = item_of_rank[ranks].astype(np.int64)
    sequences = np.split(items, np.cumsum(sizes)[:-1])
    return InteractionData(
        sequences=list(sequences),
        num_items=num_items,
        user_ids=list(range(1, num_users + 1)),
        item_ids=np.arange(num_items + 1, dtype=np.int64),
        name=f"zipf-{num_items}",
    )


def parse_option(text: str) -> tuple:
    name, _, value = text.partition("=")
    if not value:
        raise SystemExit(f"--option: expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory of the run and its result.json")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--min-length", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=60)
    parser.add_argument("--zipf", type=float, default=1.0, help="popularity exponent a")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--option", action="append", default=[], type=parse_option, help="a SASRec option NAME=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = zipf_histories(args.users, args.items, (args.min_length, args.max_length), args.zipf, args.seed)
    split = leave_one_out(data)
    config = model_config("sasrec", dict(args.option))
    train = TrainConfig(epochs=args.epochs, patience=args.epochs, seed=args.seed, device="cpu")
    torch.manual_seed(args.seed)
    model = build_model("sasrec", split.num_items, split.num_users, config)
    started = time.perf_counter()
    summary = Trainer(model, split, train, out, title=f"sasrec {data.name}").fit()
    result = {
        "command": " ".join(["python", *sys.argv]),
        "data": {"items": args.items, "users": split.num_users, "interactions": data.num_interactions,
                 "distinct_items_seen": int(len(np.unique(np.concatenate(data.sequences)))),
                 "history_lengths": [args.min_length, args.max_length], "zipf_exponent": args.zipf},
        "model": config.to_dict(),
        "threads": args.threads,
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "seconds_total": time.perf_counter() - started,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "valid": summary["valid"],
        "test": summary["test"],
        "torch": torch.__version__,
    }  # fmt: skip
    save_json(result, out / "result.json")
    print(json.dumps({key: result[key] for key in ("seconds_per_epoch", "peak_rss_gib", "test")}, indent=1))


if __name__ == "__main__":
    main()
