"""The profiling script (benchmarks/profile_kernels.py) runs and writes its rows; on a CPU a
smoke test of the wiring, its device times are measured on GPU runs (scripts/gpu_check.sh)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "profile_kernels.py"


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_profile_writes_a_row_per_backend(tmp_path):
    out = tmp_path / "profile.json"
    result = run_script("--ops", "info_nce", "--steps", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(row["op"], row["backend"]) for row in rows] == [("info_nce", "cpu"), ("info_nce", "reference")]
    assert all(row["wall_ms_synchronized"] > 0 and row["wall_ms_pipelined"] > 0 for row in rows)


def test_profile_names_an_unknown_op():
    result = run_script("--ops", "attention")
    assert result.returncode != 0 and "--ops" in result.stderr and "attention" in result.stderr
