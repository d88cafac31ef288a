"""IGR-SR against the unfinished ReaRec runs, user by user (test NDCG@10, paired bootstrap).

    python reports/lastfm-sweeps-2026-11-27/paired_unfinished.py DATA IGRSR_RUN REAREC_RUN...

``igrsr study`` compares only finished runs; these ReaRec runs were stopped early, so their
best checkpoints are scored here the way the study scores finished ones.
"""

import json
import sys
from pathlib import Path

from igrsr.data import leave_one_out, load_dataset
from igrsr.eval import per_user_metric
from igrsr.study import paired_bootstrap
from igrsr.train import TrainConfig
from igrsr.train.runs import load_best
from igrsr.train.trainer import target_ranks_of


def ndcg_at_10(run_dir, data, split):
    model, epoch = load_best(Path(run_dir), data, split, "cpu")
    ranks = target_ranks_of(model, split, "test", TrainConfig(device="cpu", progress=False))
    return per_user_metric(ranks, "NDCG", 10).numpy(), epoch


def main(data_path, igrsr_run, *rearec_runs):
    data = load_dataset(data_path)
    split = leave_one_out(data)
    ours, _ = ndcg_at_10(igrsr_run, data, split)
    rows = []
    for run in rearec_runs:
        theirs, epoch = ndcg_at_10(run, data, split)
        rows.append({"versus": Path(run).name, "best_epoch": epoch, **paired_bootstrap(ours, theirs)})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
