"""The measurement scripts in scripts/ run as documented (on tiny sizes)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).parents[1] / "scripts"


def test_the_scale_run_trains_and_evaluates_a_zipf_catalog(tmp_path):
    command = [sys.executable, str(SCRIPTS / "scale_run.py"), "--out", str(tmp_path), "--items", "3000",
               "--users", "40", "--min-length", "6", "--max-length", "9", "--threads", "1",
               "--option", "d_model=16", "--option", "num_layers=1"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["data"]["items"] == 3000 and result["data"]["users"] == 40
    assert result["data"]["distinct_items_seen"] < 3000  # the long tail: most items are never seen
    assert result["model"]["d_model"] == 16
    assert result["test"]["num_users"] == 40 and 0 <= result["test"]["NDCG@10"] <= 1
    assert result["peak_rss_gib"] > 0 and result["seconds_per_epoch"] > 0


def test_zipf_histories_follow_the_popularity_law():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scale_run", SCRIPTS / "scale_run.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = script.zipf_histories(2000, 1000, (50, 60), exponent=1.0, seed=0)
    lengths = [len(sequence) for sequence in data.sequences]
    assert min(lengths) >= 50 and max(lengths) <= 60 and data.num_items == 1000
    counts = np.sort(np.bincount(np.concatenate(data.sequences), minlength=1001)[1:])[::-1]
    # p(rank r) ∝ 1/r: the most popular item about twice as frequent as the second
    assert 1.6 < counts[0] / counts[1] < 2.5
