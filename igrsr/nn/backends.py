"""One backend name for every kernel-backed layer of a module."""

from torch import nn

from ..ops import DISPATCHERS, backend_for


def check_backend(backend: str) -> str:
    """``backend`` if some op has it (or it is ``"auto"``), else a ValueError listing the names."""
    for op in DISPATCHERS:
        backend_for(op, backend)
    return backend


def use_backend(module: nn.Module, backend: str) -> nn.Module:
    """Points every layer of ``module`` that runs an op (those with an ``OP``) at ``backend``,
    as :func:`igrsr.ops.backend_for` maps it for that op; returns ``module``."""
    for layer in module.modules():
        op = getattr(type(layer), "OP", None)
        if op is not None:
            layer.backend = backend_for(op, backend)
    return module
