"""Files written so that a crash never leaves a half-written one behind."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(file)`` into a temporary file beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file private; give it the mode an ordinary open() would.
        os.chmod(tmp, _default_file_mode())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path) -> None:
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def save_numpy(array: np.ndarray, path) -> None:
    _atomic_write(path, lambda handle: np.save(handle, array))


def save_json(obj: Any, path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str).encode("utf-8")
    _atomic_write(path, lambda handle: handle.write(text))


def load_torch(path, map_location="cpu") -> Any:
    # Checkpoints hold optimizer state, RNG states and plain dicts: not weights-only.
    return torch.load(path, map_location=map_location, weights_only=False)


def load_json(path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
