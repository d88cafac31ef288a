#!/usr/bin/env bash
# One-shot GPU check: build the CUDA extension, run the tests that have CUDA variants,
# profile each op's kernels, run the GPU benchmarks, and keep every log and JSON under
# $RESULTS.  Meant for a lent GPU machine with torch, Triton, nvcc, pytest, pytest-xdist and
# pytest-benchmark installed:
#     RESULTS=benchmarks/results/<date>-h200 bash scripts/gpu_check.sh
#     ARCHIVE=$OUT/gpu_check.tar.gz bash scripts/gpu_check.sh    # also pack $RESULTS into one file
# The benchmarks' public peers are not installed there: carry their wheels (scripts/peer_wheels.sh).
# Every stage has its own time limit (seconds, overridable below) and its own output file, so
# a stage that runs long costs only itself.  A stage past its limit gets SIGINT first, on which
# pytest still writes its JUnit XML and pytest-benchmark its JSON for what finished.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-benchmarks/results/$(date -u +%Y-%m-%d)-gpu}
ARCHIVE=${ARCHIVE:-}
# Defaults from the H200 run of 2026-11-27 (seconds taken: build 34, tests 62, attention 23,
# training step 18, InfoNCE 51 and FlexAttention 38, both cut short): about 7 minutes at most.
BUILD_LIMIT=${BUILD_LIMIT:-100}
TEST_LIMIT=${TEST_LIMIT:-90}
PROFILE_LIMIT=${PROFILE_LIMIT:-90}  # kernel time against wall time per op (not yet run on a GPU)
# The test files with CUDA variants; the others run on CPUs only and CI covers them.
TESTS=${TESTS:-"tests/test_triton_attention.py tests/test_info_nce_compiled.py tests/test_linear_cross_entropy.py tests/test_eval.py"}
# FlexAttention last and on its own: torch.compile makes it the slowest suite to start.
# linear_cross_entropy: its limit is a guess, the suite has not yet run on a GPU.
BENCH_LIMITS=${BENCH_LIMITS:-"attention:not_flex:45 training_step::30 info_nce:gpu:75 linear_cross_entropy:gpu:120 attention:flex:60"}
BENCH_TEST_LIMIT=${BENCH_TEST_LIMIT:-25}  # one benchmark case, where pytest-timeout is installed
mkdir -p "$RESULTS"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16}
export PYTHONUNBUFFERED=1
status=0

stage() {  # stage NAME LIMIT COMMAND...: run COMMAND under LIMIT seconds, log to $RESULTS/NAME.log
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout --signal=INT --kill-after=15 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - started)) s (limit $limit s)" | tee -a "$RESULTS/stages.txt"
    tail -n 8 "$RESULTS/$name.log"
    [ "$rc" -eq 0 ] || status=1
}

# The public peers of the benchmarks, where the run carries their wheels (scripts/peer_wheels.sh).
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/peers .whl/*.whl \
        && export PYTHONPATH=/tmp/peers${PYTHONPATH:+:$PYTHONPATH}
fi
"$PYTHON" - <<'PY' > "$RESULTS/environment.json"
import json, platform, datetime, importlib.metadata, torch
def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
print(json.dumps({
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "torch": torch.__version__, "cuda": torch.version.cuda, "triton": version("triton"),
    "python": platform.python_version(),
    "peers": {name: version(name) for name in ("liger-kernel", "cut-cross-entropy")},
}, indent=2))
PY
cat "$RESULTS/environment.json"
stage build "$BUILD_LIMIT" "$PYTHON" -m pip install --no-build-isolation --no-deps -e .
"$PYTHON" -c "import igrsr.ops.extension as e; print('compiled extension:', e.load_error() or 'loaded')" \
    | tee -a "$RESULTS/stages.txt"
workers=$("$PYTHON" -c "import xdist" 2>/dev/null && echo "-n 8")
per_case_limit=$("$PYTHON" -c "import pytest_timeout" 2>/dev/null && echo "--timeout=$BENCH_TEST_LIMIT")
stage tests "$TEST_LIMIT" "$PYTHON" -m pytest $TESTS -q -rfE $workers --junitxml="$RESULTS/tests.xml"
stage profile "$PROFILE_LIMIT" "$PYTHON" benchmarks/profile_kernels.py --json "$RESULTS/profile.json"
for entry in $BENCH_LIMITS; do
    IFS=: read -r suite filter limit <<< "$entry"
    name=bench_${suite}${filter:+_${filter}}
    stage "$name" "$limit" "$PYTHON" -m pytest "benchmarks/bench_$suite.py" --benchmark-only -q $per_case_limit \
        ${filter:+-k "${filter//_/ }"} --benchmark-json="$RESULTS/$name.json" \
        --benchmark-min-rounds=3 --benchmark-max-time=0.5
done
"$PYTHON" benchmarks/summarize.py "$RESULTS"/bench_*.json > "$RESULTS/summary.md" 2>&1 || status=1
cat "$RESULTS/stages.txt" "$RESULTS/summary.md"
if [ -n "$ARCHIVE" ]; then
    tar -czf "$ARCHIVE" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"
fi
exit $status
