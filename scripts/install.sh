#!/usr/bin/env bash
# Install igrsr with its test tools (the `test` extra of pyproject.toml) into the current
# Python environment.
#
# torch is installed first, pinned to the CPU build this project is developed against, unless
# a torch is already present (a CUDA build you installed yourself is kept).  The package is
# then built with --no-build-isolation so that setup.py sees that torch and compiles the
# C++/CUDA InfoNCE extension against it instead of fetching a torch of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install "torch==${IGRSR_TORCH_VERSION:-2.13.0}"
fi
"$PYTHON" -m pip install setuptools wheel ninja
MAX_JOBS=${MAX_JOBS:-2} "$PYTHON" -m pip install --no-build-isolation -e ".[test]"
"$PYTHON" -c "import igrsr, igrsr.ops.extension as e; print('igrsr', igrsr.__version__, 'installed; compiled InfoNCE:', e.load_error() or 'built')"
