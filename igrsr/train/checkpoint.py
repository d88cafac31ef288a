"""Files written so that a crash never leaves a half-written one behind, and versioned JSON.

Every ``run.json``, ``results.json`` and ``study.json`` carries ``"schema": SCHEMA``; a file
of an older layout is read only after ``igrsr migrate`` (:mod:`igrsr.migrate`) has rewritten it.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

# The layout of run.json, results.json and study.json; raised when it changes (with a step in
# igrsr.migrate that rewrites older files).  Files without one are schema 1.
SCHEMA = 2


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


def save_stream(path, write: Callable[[Any], None]) -> None:
    """Write a file of any size piece by piece through ``write(binary_file)``, atomically."""
    _atomic_write(path, write)


def save_json(obj: Any, path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str).encode("utf-8")
    _atomic_write(path, lambda handle: handle.write(text))


def load_torch(path, map_location="cpu") -> Any:
    # Checkpoints hold optimizer state, RNG states and plain dicts: not weights-only.
    return torch.load(path, map_location=map_location, weights_only=False)


def load_json(path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_versioned(path) -> Any:
    """A run or study JSON file of the current :data:`SCHEMA`; an older one is refused with the
    command that upgrades it, a truncated one with its name."""
    try:
        content = load_json(path)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON (truncated or corrupt?): {error}") from None
    schema = content.get("schema", 1) if isinstance(content, dict) else None
    if schema != SCHEMA:
        if isinstance(schema, int) and schema < SCHEMA:
            raise ValueError(
                f"{path} was written by an older igrsr (schema {schema}, this one reads {SCHEMA}): "
                f"upgrade it once with `igrsr migrate {Path(path).parent}`"
            )
        raise ValueError(f"{path} has schema {schema!r}; this igrsr reads schema {SCHEMA}")
    return content
