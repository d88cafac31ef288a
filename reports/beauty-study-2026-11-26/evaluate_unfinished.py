"""Test metrics of an unfinished run's best checkpoint, and IGR-SR against it user by user.

    python reports/beauty-study-2026-11-26/evaluate_unfinished.py STUDY_OUT/runs/Beauty/rearec-erl-<hash> \
        STUDY_OUT/runs/Beauty/igrsr-<hash>

How this report's ReaRec-ERL numbers were made: its run was still improving when the session's
time ran out, so it has a ``best.pt`` (best validation NDCG@10 so far) but no ``results.json``.
The model is rebuilt with the study's options, its best weights are scored on the test set,
and IGR-SR's finished run is compared with it user by user (paired bootstrap, as the report).
"""

import json
import sys
from pathlib import Path

import torch

from igrsr.data import leave_one_out
from igrsr.eval import per_user_metric, ranking_metrics
from igrsr.models.registry import build_model
from igrsr.study import paired_bootstrap
from igrsr.train import TrainConfig, load_data
from igrsr.train.checkpoint import load_torch
from igrsr.train.runs import per_user_test_ranks
from igrsr.train.trainer import target_ranks_of

OPTIONS = {"max_len": 50, "d_model": 64, "num_layers": 2, "num_heads": 2, "dropout": 0.5}  # the study's


def main(unfinished: Path, igrsr_run: Path) -> None:
    torch.set_num_threads(2)
    data = load_data("../shared/data/Beauty.txt")
    split = leave_one_out(data)
    model_name = unfinished.name.rsplit("-", 1)[0]
    model = build_model(model_name, split.num_items, len(split.train), OPTIONS)
    checkpoint = load_torch(unfinished / "best.pt")
    model.load_state_dict(checkpoint["model"])
    ranks = target_ranks_of(model, split, "test", TrainConfig(progress=False))
    ours = per_user_test_ranks(igrsr_run, data, split)
    paired = paired_bootstrap(per_user_metric(ours, "NDCG", 10).numpy(), per_user_metric(ranks, "NDCG", 10).numpy())
    report = {
        "run_dir": str(unfinished),
        "best_epoch": checkpoint.get("epoch"),
        "test": ranking_metrics(ranks),
        "igrsr_versus_it_NDCG@10": paired,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
