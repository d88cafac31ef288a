"""When the Triton backend can run, and the input limits that only it has."""

import importlib.util
from typing import Optional

import torch

from ...kernels.triton.interpreter import INTERPRET_ENV, is_interpreting

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Looked up once, without importing Triton (slow), so `import igrsr` stays light.
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


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
    """Whether the kernels take these inputs, so ``auto`` leaves the others to the reference."""
    return q.shape[-1] in HEAD_DIMS and q.dtype in DTYPES


def check_triton_inputs(q: torch.Tensor) -> None:
    """Limits of the kernels beyond the op's own validation, named after the argument."""
    head_dim = q.shape[-1]
    if head_dim not in HEAD_DIMS:
        raise ValueError(
            f"backend 'triton' needs the head dim of q (last dim) in {HEAD_DIMS}, got {head_dim}"
        )
    if q.dtype not in DTYPES:
        names = ", ".join(str(d).replace("torch.", "") for d in DTYPES)
        raise TypeError(f"backend 'triton' needs q, k, v of dtype in ({names}), got {q.dtype}")
