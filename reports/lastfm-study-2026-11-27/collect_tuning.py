"""The LastFM learning-rate choices: every tuning run's settings and best validation NDCG@10.

    python reports/lastfm-study-2026-11-27/collect_tuning.py /work/tune-lastfm/LastFM > tuning.json

Each run is a finished or interrupted ``igrsr train`` run directory; an
interrupted one is read from its ``last.pt`` history (the best validation epoch so far).
"""

import json
import sys
from pathlib import Path

from igrsr.train.checkpoint import load_torch
from igrsr.train.runs import is_finished, run_description


def tuning_row(run_dir: Path) -> dict:
    description = run_description(run_dir)
    history = description["history"] if is_finished(run_dir) else load_torch(run_dir / "last.pt")["history"]
    best = max(history, key=lambda row: row["valid"]["NDCG@10"])
    return {
        "run_dir": run_dir.name,
        "model": description["model"],
        "finished": is_finished(run_dir),
        "lr": description["train"]["lr"],
        "weight_decay": description["train"]["weight_decay"],
        "dropout": description["options"]["dropout"],
        "batch_size": description["train"]["batch_size"],
        "patience": description["train"]["patience"],
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "valid_NDCG@10": best["valid"]["NDCG@10"],
    }


if __name__ == "__main__":
    rows = [tuning_row(run) for run in sorted(Path(sys.argv[1]).iterdir()) if run.is_dir()]
    print(json.dumps(sorted(rows, key=lambda row: (row["model"], -row["valid_NDCG@10"])), indent=2))
