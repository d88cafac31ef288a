#!/usr/bin/env bash
# One-shot GPU check: build the CUDA extension, run the GPU tests and the GPU benchmarks, and
# write everything under $OUT (default: benchmarks/results/<date>).  Meant for a lent GPU
# machine with torch, Triton, nvcc, pytest and pytest-benchmark already installed:
#     OUT=/some/dir bash scripts/gpu_check.sh
# Every stage has its own time limit (seconds, overridable below) and its own output file, so
# a stage that runs long costs only itself: what finished before it is kept.  The limits add
# up to under 10 minutes, one device command.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/$(date -u +%Y-%m-%d)}
BUILD_LIMIT=${BUILD_LIMIT:-150}
TEST_LIMIT=${TEST_LIMIT:-120}
BENCH_LIMITS=${BENCH_LIMITS:-"attention:240 info_nce:45 training_step:30"}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-8}
status=0

stage() {  # stage NAME LIMIT COMMAND...: run COMMAND under LIMIT seconds, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - started)) s (limit $limit s)" | tee -a "$OUT/stages.txt"
    tail -n 15 "$OUT/$name.log"
    [ "$rc" -eq 0 ] || status=1
}

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
cat "$OUT/environment.json"
stage build "$BUILD_LIMIT" pip install --no-build-isolation --no-deps -e .
stage gpu_tests "$TEST_LIMIT" python -m pytest tests/test_triton_attention.py tests/test_info_nce_compiled.py \
    tests/test_models.py -q -rf --junitxml="$OUT/gpu_tests.xml"
for entry in $BENCH_LIMITS; do
    suite=${entry%%:*}
    stage "bench_$suite" "${entry##*:}" python -m pytest "benchmarks/bench_$suite.py" --benchmark-only -q \
        --benchmark-json="$OUT/bench_$suite.json" --benchmark-min-rounds=3 --benchmark-max-time=0.5
done
python benchmarks/summarize.py "$OUT"/bench_*.json > "$OUT/summary.md" 2>&1 || true
cat "$OUT/summary.md"
exit $status
