"""Distinct item codes of each LightRec run in a study: ``python count_codes.py DATA STUDY_JSON``.

Runs trained since the package records model facts have them in ``results.json``; older
ones are loaded from their best checkpoint and counted the same way (``LightRec.facts``).
Prints one JSON line per run.
"""

import json
import sys
from pathlib import Path

from igrsr.data import leave_one_out
from igrsr.study import with_noisy_inputs
from igrsr.train import load_data
from igrsr.train.runs import load_best


def main(data_path: str, study_path: str) -> None:
    data, study = load_data(data_path), json.loads(Path(study_path).read_text())
    seen = set()
    for record in study["records"]:
        run = Path(record["run_dir"])
        if record["model"] != "lightrec" or run in seen:
            continue
        seen.add(run)
        result = json.loads((run / "results.json").read_text())
        facts = result.get("facts")
        if facts is None:
            noisy = data if record["noise"] == 0 else with_noisy_inputs(data, record["noise"], study["noise_seed"])
            facts = load_best(run, noisy, leave_one_out(noisy), "cpu")[0].facts()
        row = {"run": run.name, "seed": record["seed"], "noise": record["noise"], "best_epoch": result["best_epoch"]}
        print(json.dumps({**row, "test NDCG@10": result["test"]["NDCG@10"], **facts}))


if __name__ == "__main__":
    main(*sys.argv[1:])
