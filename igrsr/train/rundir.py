"""A run directory while a process trains in it: its lock, its clean start and what ``--resume`` finds.

One process at a time trains in a run directory.  It holds an exclusive ``flock`` on the
directory's ``.lock`` file, which the kernel releases when the process ends in any way, a
``kill -9`` included, so a dead run never leaves a stale lock; the file names the holder (pid,
host, start time) for the message another process gets.
"""

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ..models.registry import model_entry
from .checkpoint import load_versioned

LOCK_NAME = ".lock"
# What a run writes as it trains and when it ends; ``--fresh`` removes them before it starts so
# that an interrupted retraining never mixes its checkpoints with the old run's results.
RUN_OUTPUTS = ("results.json", "test_ranks.npy", "last.pt", "best.pt")


class RunBusyError(RuntimeError):
    """Another process trains in the run directory."""


@contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block, or raise :class:`RunBusyError` naming its holder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunBusyError(f"{run_dir} is in use: {holder} trains in it; wait for it to end or stop it") from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # the holder's line goes with the lock; the empty file stays


def start_over(run_dir: Path) -> None:
    """Remove a run's checkpoints and results (``--fresh``; the caller holds the lock)."""
    for name in RUN_OUTPUTS:
        (Path(run_dir) / name).unlink(missing_ok=True)


def is_interrupted(run_dir: Path) -> bool:
    return (run_dir / "last.pt").exists() and not (run_dir / "results.json").exists()


def flatten(settings: Mapping[str, Any], prefix: Tuple[str, ...] = ()) -> Dict[Tuple[str, ...], Any]:
    """``{("config", "d_model"): 64, ...}`` of nested settings."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, (*prefix, key)))
        else:
            flat[(*prefix, key)] = value
    return flat


def option_name(model: str, path: Tuple[str, ...]) -> str:
    """The command-line option a settings path comes from: ``("train", "lr")`` is ``--lr``."""
    own = path[0] != "backbone"
    while path[0] == "backbone":
        path = path[1:]
    name = path[-1]
    if name == "revision":
        return f"the {model if own else 'stage 1'} model's revision (igrsr was updated)"
    option = "--" + name.replace("_", "-")
    if own and path[0] == "train" and name in ("lr", "epochs") and model_entry(model).stage2_settings:
        option = f"--stage2-{name}/{option}"
    return option if own else f"{option} (its stage 1)"


def differences(model: str, theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> List[str]:
    """``"--lr 0.001 there, 0.003 here"`` for each setting the two runs' settings differ in."""
    theirs, ours = flatten(theirs), flatten(ours)
    found: Dict[str, str] = {}
    for path in sorted(set(theirs) | set(ours)):
        if theirs.get(path) != ours.get(path):
            name = option_name(model, path)
            found.setdefault(name, f"{name} {theirs.get(path)!r} there, {ours.get(path)!r} here")
    return list(found.values())


def resume_mismatch(model: str, settings: Mapping[str, Any], run_dir: Path, fingerprint: str) -> Optional[str]:
    """Why ``--resume`` cannot continue ``run_dir`` (not started) although an interrupted run of
    the same model on the same data lies beside it: the options the nearest such run differs in."""
    candidates = []
    for other in Path(run_dir).parent.glob(f"{model}-*"):
        if other == run_dir or not is_interrupted(other) or not (other / "run.json").exists():
            continue
        try:
            description = load_versioned(other / "run.json")
        except ValueError:
            continue  # an unreadable run.json describes no run to compare with
        if description.get("model") != model or description.get("data", {}).get("fingerprint") != fingerprint:
            continue
        found = differences(model, description.get("settings", {}), settings)
        candidates.append((len(found), -(other / "last.pt").stat().st_mtime, str(other), found))
    if not candidates:
        return None
    _, _, other, found = min(candidates)
    return (
        f"--resume: no interrupted {model} run has these options; the interrupted run {other} differs in "
        f"{'; '.join(found)}. Give its options to resume it, or leave out --resume to start a new run"
    )
