"""Ops: the functional layer under :mod:`igrsr.nn`.

Each op validates its inputs, then the op's dispatcher picks a backend: the PyTorch
reference (:mod:`igrsr.ops.pytorch`) or a compiled / Triton kernel where one can run.
"""

from . import causal_attention as _causal_module
from . import cross_attention as _cross_module
from . import info_nce as _info_nce_module
from . import compiled as _compiled_backends  # noqa: F401  (registers info_nce backends "cpu", "cuda")
from . import triton as _triton_backend  # noqa: F401  (registers backend "triton")
from .causal_attention import causal_attention
from .cross_attention import intent_cross_attention
from .dispatch import BackendUnavailableError
from .info_nce import info_nce

DISPATCHERS = {
    "intent_cross_attention": _cross_module.dispatcher,
    "causal_attention": _causal_module.dispatcher,
    "info_nce": _info_nce_module.dispatcher,
}


def available_backends(op: str, device="cpu"):
    """Backends of ``op`` that can run on ``device`` now, in the order ``auto`` tries them."""
    import torch

    if op not in DISPATCHERS:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(DISPATCHERS)}")
    return DISPATCHERS[op].available(torch.device(device))


__all__ = [
    "BackendUnavailableError",
    "available_backends",
    "causal_attention",
    "info_nce",
    "intent_cross_attention",
]
