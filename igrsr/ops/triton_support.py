"""When the Triton backends can run, and the input limits of the attention kernels.

Importable without Triton (and without importing it, which is slow), so ``import igrsr`` stays
light and the dispatchers can say why Triton is unavailable.
"""

import importlib.util
import os
from typing import Optional

import torch

INTERPRET_ENV = "TRITON_INTERPRET"
HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Looked up once, without importing Triton.
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def is_interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: kernels run on the CPU interpreter (tests without a
    GPU).  Triton reads the variable when a kernel is defined, so it must be set before the
    kernel modules are imported."""
    return os.environ.get(INTERPRET_ENV, "0") == "1"


def why_triton_unavailable(device: torch.device) -> Optional[str]:
    """None when the Triton kernels can run on ``device``, else the reason.

    CPU tensors are accepted only under the Triton interpreter, so ``auto`` keeps the
    reference on the CPU in normal use.
    """
    if device.type != "cuda" and not is_interpreting():
        return (
            f"Triton kernels need a CUDA device, got {device.type!r} "
            f"(set {INTERPRET_ENV}=1 before Triton is imported to run them on the CPU interpreter)"
        )
    if not TRITON_INSTALLED:
        return "Triton is not installed"
    return None


def triton_supports(q: torch.Tensor, *other_inputs) -> bool:
    """Whether the attention kernels take these inputs, so ``auto`` leaves the others to the
    reference."""
    return q.shape[-1] in HEAD_DIMS and q.dtype in DTYPES


def check_triton_inputs(q: torch.Tensor) -> None:
    """Limits of the attention kernels beyond the op's own validation, named after the argument."""
    head_dim = q.shape[-1]
    if head_dim not in HEAD_DIMS:
        raise ValueError(f"backend 'triton' needs the head dim of q (last dim) in {HEAD_DIMS}, got {head_dim}")
    if q.dtype not in DTYPES:
        names = ", ".join(str(d).replace("torch.", "") for d in DTYPES)
        raise TypeError(f"backend 'triton' needs q, k, v of dtype in ({names}), got {q.dtype}")
