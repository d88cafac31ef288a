"""The compiled extension ``igrsr._C``, loaded once: C++ CPU and CUDA kernels registered as
torch ops (sources in ``csrc/``, found by :mod:`igrsr.ops.extension_sources`).

Importing this module never fails.  When the extension was not built, or does not load
(built against another torch, say), :data:`LOAD_ERROR` says why, and the dispatcher backends
that need it give that reason when asked for.
"""

import importlib
from typing import Optional

try:
    _extension = importlib.import_module("igrsr._C")
    LOAD_ERROR: Optional[str] = None
except ImportError as error:  # also raised for undefined symbols of a stale build
    _extension = None
    LOAD_ERROR = (
        f"the compiled extension igrsr._C is not available ({error}); build it with "
        "`pip install --no-build-isolation -e .` in an environment that has torch"
    )


def built_with_cuda() -> bool:
    """Whether igrsr._C loaded and contains the CUDA kernels."""
    return _extension is not None and bool(_extension.built_with_cuda)


__all__ = ["LOAD_ERROR", "built_with_cuda"]
