#!/usr/bin/env bash
# One-shot GPU check: build the CUDA extension, run the GPU tests and the GPU benchmarks, and
# write everything as JSON under $OUT (default: benchmarks/results/<date>).  Meant for a lent
# GPU machine with torch, Triton, nvcc, pytest and pytest-benchmark already installed:
#     OUT=/some/dir bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/$(date -u +%Y-%m-%d)}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
status=0
python - <<'PY' > "$OUT/environment.json"
import json, platform, datetime, torch
try:
    import triton; triton_version = triton.__version__
except ImportError:
    triton_version = None
print(json.dumps({
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton_version,
    "python": platform.python_version(),
}, indent=2))
PY
pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1 || { echo "build failed"; status=1; }
python -m pytest tests/test_triton_attention.py tests/test_info_nce_compiled.py tests/test_models.py -q -x \
    --junitxml="$OUT/gpu_tests.xml" 2>&1 | tail -25 || status=1
python -m pytest benchmarks/ --benchmark-only -q --benchmark-json="$OUT/benchmarks.json" \
    --benchmark-min-rounds=3 --benchmark-max-time=0.5 2>&1 | tail -40 || status=1
python benchmarks/summarize.py "$OUT/benchmarks.json" > "$OUT/summary.md" 2>&1 || true
cat "$OUT/summary.md"
exit $status
