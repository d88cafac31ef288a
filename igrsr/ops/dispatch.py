"""One dispatcher for every op: picks the backend that runs a call.

Each op owns an :class:`OpDispatcher` that knows its backends in order of preference.
A backend is registered with a function that says, for the tensors at hand, why it
cannot run (``None`` when it can).  The choice comes from, in order:

1. the ``backend=`` argument of the call, unless it is ``"auto"``;
2. the environment variable ``IGRSR_<OP>_BACKEND`` (for example
   ``IGRSR_CAUSAL_ATTENTION_BACKEND=reference``);
3. the environment variable ``IGRSR_BACKEND``, for ops that have a backend of that name
   (``IGRSR_BACKEND=reference`` forces every reference; ``IGRSR_BACKEND=triton`` selects
   Triton for the ops that have a Triton kernel and leaves the others on ``auto``);
4. ``auto``: the first backend, in preference order, that can run, that ``auto`` may use on
   this device type (Triton under its CPU interpreter is for tests that ask for it by name,
   never an automatic choice), and that supports these inputs (a head dim a kernel lacks, say).

Asking for a backend that cannot run raises :class:`BackendUnavailableError` with the
reason; there is never a silent fallback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

BACKEND_NAMES = ("reference", "triton", "cuda", "cpu", "chunked")
GLOBAL_ENV = "IGRSR_BACKEND"


class BackendUnavailableError(RuntimeError):
    """A backend was asked for by name but cannot run these inputs here."""


@dataclass
class Backend:
    name: str
    impl: Callable
    # Returns None when the backend can run on tensors of this device, else the reason.
    why_unavailable: Callable[[torch.device], Optional[str]]
    preference: int
    # Device types on which ``auto`` may pick this backend; None = any.
    auto_device_types: Optional[Tuple[str, ...]]
    # Whether the backend handles these inputs (the op's implementation arguments).  Only
    # ``auto`` consults it; a backend asked for by name raises its own clear error instead.
    supports: Callable[..., bool]

    def auto_eligible(self, device: torch.device, inputs: Sequence) -> bool:
        if self.auto_device_types is not None and device.type not in self.auto_device_types:
            return False
        return self.why_unavailable(device) is None and self.supports(*inputs)


def always_available(device: torch.device) -> Optional[str]:
    return None


def supports_everything(*inputs) -> bool:
    return True


class OpDispatcher:
    """Backends of one op, and the rule that picks one for a call."""

    def __init__(self, op_name: str):
        self.op_name = op_name
        self._backends: Dict[str, Backend] = {}

    @property
    def env_var(self) -> str:
        return f"IGRSR_{self.op_name.upper()}_BACKEND"

    def register(
        self,
        name: str,
        impl: Callable,
        why_unavailable: Callable[[torch.device], Optional[str]] = always_available,
        preference: int = 100,
        auto_device_types: Optional[Sequence[str]] = None,
        supports: Callable[..., bool] = supports_everything,
    ) -> None:
        """Add a backend; lower ``preference`` is tried first by ``auto``."""
        if name not in BACKEND_NAMES:
            raise ValueError(f"unknown backend name {name!r}; expected one of {BACKEND_NAMES}")
        device_types = None if auto_device_types is None else tuple(auto_device_types)
        self._backends[name] = Backend(name, impl, why_unavailable, preference, device_types, supports)

    def backends(self) -> List[str]:
        return [b.name for b in sorted(self._backends.values(), key=lambda b: b.preference)]

    def requested(self, backend: str) -> str:
        """The backend name asked for by the argument or the environment, or 'auto'."""
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string, got {type(backend).__name__}")
        if backend != "auto":
            return backend
        per_op = os.environ.get(self.env_var, "").strip()
        if per_op:
            return per_op
        global_choice = os.environ.get(GLOBAL_ENV, "").strip()
        if global_choice and global_choice in self._backends:
            return global_choice
        return "auto"

    def check_name(self, backend: str) -> str:
        """``backend`` if this op has it or it is ``"auto"``, else the op's ValueError; layers run
        it when they are built, so a name their op lacks fails there and not at the first call."""
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string, got {type(backend).__name__}")
        if backend != "auto" and backend not in self._backends:
            raise ValueError(f"{self.op_name}: unknown backend {backend!r}; this op has {self.backends()} or 'auto'")
        return backend

    def select(self, backend: str, device: torch.device, inputs: Sequence = ()) -> Backend:
        """The backend for a call on ``device`` with implementation arguments ``inputs``."""
        name = self.requested(backend)
        if name == "auto":
            for candidate in sorted(self._backends.values(), key=lambda b: b.preference):
                if candidate.auto_eligible(device, inputs):
                    return candidate
            raise BackendUnavailableError(f"{self.op_name}: no backend can run these inputs on {device}")
        chosen = self._backends[self.check_name(name)]
        reason = chosen.why_unavailable(device)
        if reason is not None:
            raise BackendUnavailableError(f"{self.op_name}: backend {name!r} cannot run on {device}: {reason}")
        return chosen

    def available(self, device: torch.device) -> List[str]:
        """Backends that can run on ``device`` right now (by name), in preference order."""
        return [n for n in self.backends() if self._backends[n].why_unavailable(device) is None]
