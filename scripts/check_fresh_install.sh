#!/usr/bin/env bash
# A fresh environment with only torch: plain `pip install -e .` (build isolation: no torch at
# build time, so nothing is compiled), then the compiled InfoNCE, compiled at its first use and
# checked against the reference; a second process loads the cached build.  Then `pip install .`
# (a wheel, its sources in igrsr/_csrc) in the same environment loads that build too: it is
# cached by the sources' contents.  About 3 minutes on 2 cores; a step of .ci/run.
#     bash scripts/check_fresh_install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The package as a fresh clone has it: no compiled extension, no build outputs.
mkdir "$work/source"
tar c --exclude='*.so' --exclude=__pycache__ --exclude='*.egg-info' \
    pyproject.toml setup.py README.md MANIFEST.in igrsr csrc | tar x -C "$work/source"

started=$SECONDS
"$PYTHON" -m venv "$work/venv"
python="$work/venv/bin/python"
torch_version=$("$PYTHON" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || echo 2.13.0)
"$python" -m pip install -q "torch==${IGRSR_TORCH_VERSION:-$torch_version}"
"$python" -m pip install -q -e "$work/source"
echo "fresh environment with torch, igrsr installed with pip install -e: $((SECONDS - started)) s"
export TORCH_EXTENSIONS_DIR="$work/extensions"

cat > "$work/check.py" <<'PY'
import sys
import time

import torch

import igrsr
from igrsr.ops import info_nce
from igrsr.ops.extension_sources import csrc_dir

started = time.perf_counter()
z1 = torch.randn(37, 19, dtype=torch.float64, requires_grad=True)
z2 = torch.randn(37, 19, dtype=torch.float64, requires_grad=True)
loss = info_nce(z1, z2, backend="cpu")
grads = torch.autograd.grad(loss, (z1, z2))
expected = info_nce(z1, z2, backend="reference")
for got, want in zip((loss, *grads), (expected, *torch.autograd.grad(expected, (z1, z2)))):
    torch.testing.assert_close(got, want)
compiled = torch.compile(lambda a, b: info_nce(a, b, backend="cpu"), fullgraph=True)
torch.testing.assert_close(compiled(z1.float(), z2.float()), expected.float(), rtol=1e-5, atol=1e-5)
print(f"{sys.argv[1]}: igrsr {igrsr.__file__}, sources {csrc_dir()}: info_nce backend 'cpu' matches the "
      f"reference, torch.compile traces it ({time.perf_counter() - started:.0f} s)")
PY

run_check() {  # stage, then whether the extension must be compiled in this process
    (cd "$work" && "$python" check.py "$1" 2>"$work/$1.err") || { cat "$work/$1.err" >&2; exit 1; }
    if [ "$2" = compiles ]; then
        grep -q "^igrsr: compiling the C++" "$work/$1.err" || { echo "$1: no line announced the build" >&2; exit 1; }
    elif grep -q "igrsr: compiling" "$work/$1.err"; then
        echo "$1: compiled again instead of loading the cached build" >&2; exit 1
    fi
}
run_check editable compiles
run_check editable-again cached
"$python" -m pip install -q "$work/source"  # the wheel replaces the editable install
run_check wheel cached
(cd "$work" && "$python" -c "import igrsr.ops.extension_sources as s; assert s.csrc_dir().name == '_csrc', s.csrc_dir()")
echo "fresh install checked in $((SECONDS - started)) s"
