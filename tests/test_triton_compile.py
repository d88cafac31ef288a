"""The Triton kernels compile for real GPUs (sm_80, sm_90), checked without one.

The accuracy tests run the kernels on Triton's CPU interpreter, which accepts code the GPU
compiler rejects (a kernel reading a plain Python global compiled under the interpreter and
failed on the first GPU).  ``scripts/compile_triton_kernels.py`` compiles every kernel as the
launchers configure it on a GPU; it runs in a subprocess because the interpreter, switched on
for this test session, cannot be switched off in it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from igrsr.ops.triton_support import TRITON_INSTALLED


def nvidia_backend_available():
    if not TRITON_INSTALLED:
        return False
    from triton.backends import backends

    return "nvidia" in backends


@pytest.mark.skipif(not nvidia_backend_available(), reason="needs Triton with its NVIDIA backend")
def test_every_kernel_compiles_for_gpus():
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # today's default, stated: silences Triton's warning
    script = Path(__file__).resolve().parents[1] / "scripts" / "compile_triton_kernels.py"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("B shared") == 120, result.stdout
