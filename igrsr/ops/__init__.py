"""Ops: the functional layer under :mod:`igrsr.nn`.

Each op lives in one subpackage (``igrsr/ops/<op>/``): it validates its inputs, then the op's
dispatcher picks a backend: the op's PyTorch reference (``<op>/reference.py``) or a Triton /
compiled kernel where one can run.  docs/adding-an-op.md describes the layout.
"""

from .causal_attention import causal_attention
from .causal_attention import dispatcher as _causal_dispatcher
from .dispatch import BackendUnavailableError
from .info_nce import dispatcher as _info_nce_dispatcher
from .info_nce import info_nce, nt_xent
from .intent_cross_attention import dispatcher as _cross_dispatcher
from .intent_cross_attention import intent_cross_attention
from .linear_cross_entropy import dispatcher as _linear_cross_entropy_dispatcher
from .linear_cross_entropy import linear_cross_entropy

DISPATCHERS = {
    "intent_cross_attention": _cross_dispatcher,
    "causal_attention": _causal_dispatcher,
    "info_nce": _info_nce_dispatcher,
    "linear_cross_entropy": _linear_cross_entropy_dispatcher,
}


def dispatcher_of(op: str):
    if op not in DISPATCHERS:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(DISPATCHERS)}")
    return DISPATCHERS[op]


def available_backends(op: str, device="cpu"):
    """Backends of ``op`` that can run on ``device`` now, in the order ``auto`` tries them."""
    import torch

    return dispatcher_of(op).available(torch.device(device))


def check_op_backend(op: str, backend: str) -> str:
    """``backend`` if ``op`` has it (or it is ``"auto"``), else the op's ValueError naming the
    op's backends: the rule of the ops, and of the layers that run one op."""
    return dispatcher_of(op).check_name(backend)


def backend_for(op: str, backend: str) -> str:
    """What ``op`` runs for one backend name given to a whole model: the name itself
    where ``op`` has it (``"auto"`` and ``"reference"`` everywhere), else ``"auto"``, as for
    the IGRSR_BACKEND variable.  So ``backend="triton"`` puts IGR-SR's attention on the Triton
    kernels and leaves its InfoNCE, which has no Triton kernel, on its best one.  A name that
    no op has is an error at once, not at the first forward."""
    dispatcher = dispatcher_of(op)
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    if backend == "auto" or backend in dispatcher.backends():
        return backend
    known = sorted({name for other in DISPATCHERS.values() for name in other.backends()})
    if backend not in known:
        raise ValueError(f"backend must be 'auto' or one of {known}, got {backend!r}")
    return "auto"


__all__ = [
    "BackendUnavailableError",
    "available_backends",
    "backend_for",
    "check_op_backend",
    "causal_attention",
    "info_nce",
    "intent_cross_attention",
    "nt_xent",
    "linear_cross_entropy",
]
