#!/usr/bin/env bash
# Which direct calls of the compiled InfoNCE op that fail an argument check crash the process
# (seen on an H200 machine with torch 2.11 and g++ 13: value checks segfault, type checks raise
# TypeError), and the innermost frames of the crash, where gdb or cuda-gdb is installed.
#     bash scripts/diagnose_op_error_crash.sh
set -uo pipefail
PYTHON=${PYTHON:-python3}
probe=$(mktemp --suffix=.py)
trap 'rm -f "$probe"' EXIT
cat > "$probe" <<'PY'
import sys

import torch

import igrsr.ops  # noqa: F401  (loads igrsr._C, which registers torch.ops.igrsr.*)

check, device = sys.argv[1], sys.argv[2]
z = torch.randn(4, 3, device=device)
other = {"value": torch.randn(4, 2, device=device), "type": z.double()}[check]
try:
    torch.ops.igrsr.info_nce_forward(z, other, 0.1, True, True, None, None)
except Exception as error:  # the expected outcome: a ValueError or TypeError
    print(f"{check} check on {device}: {type(error).__name__}: {str(error).splitlines()[0]}")
PY
devices=cpu
"$PYTHON" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && devices="cpu cuda"
for device in $devices; do
    for check in value type; do
        "$PYTHON" "$probe" "$check" "$device"
        echo "  exit $?"
    done
done
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cxx11 abi', torch.compiled_with_cxx11_abi())"
c++ --version | head -n 1
debugger=$(command -v gdb || command -v cuda-gdb)
if [ -n "$debugger" ]; then
    timeout 120 "$debugger" -batch -ex run -ex "bt 16" --args "$PYTHON" "$probe" value cpu 2>&1 \
        | grep -E "^#|signal" | cut -c1-300
fi
