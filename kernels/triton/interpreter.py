"""Whether Triton runs on its CPU interpreter; importable without Triton."""

import os

INTERPRET_ENV = "TRITON_INTERPRET"


def is_interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: kernels run on the CPU interpreter (tests without a
    GPU).  Triton reads the variable when a kernel is defined, so it must be set before the
    kernel modules are imported."""
    return os.environ.get(INTERPRET_ENV, "0") == "1"
