"""The compiled extension ``igrsr._C``: C++ CPU and CUDA kernels registered as torch ops
(sources in ``csrc/``, found by :mod:`igrsr.ops.extension_sources`).

Where it comes from:

1. ``igrsr/_C*.so``, built at install time where torch was there to build against
   (``pip install --no-build-isolation -e .``, scripts/install.sh); imported with this module.
2. Otherwise (a ``pip install`` with build isolation has no torch at build time; or that file
   was built against another torch and does not load), it is compiled at the first use of a
   compiled backend, with ``torch.utils.cpp_extension.load`` and ninja, into a cache folder
   keyed by the torch and Python versions, the sources' contents and the flags:
   ``$TORCH_EXTENSIONS_DIR/igrsr/...`` if that variable is set, else ``~/.cache/igrsr/...``
   (``$XDG_CACHE_HOME``).  One line on stderr says so while it compiles (about a minute); later
   processes load the cached build.  ``IGRSR_BUILD_EXTENSION=0`` turns this off.

Importing this module never fails and never compiles.  :func:`load_error` (what the dispatcher
backends that need the extension ask) loads it, compiling it at the first call if it must, and
returns why it is unavailable (the compiler's error where compiling failed), or ``None``.
"""

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, List, Optional

from . import extension_sources

BUILD_SWITCH = "IGRSR_BUILD_EXTENSION"
MODULE_NAME = "igrsr_C"  # the module compiled at first use (igrsr._C when built at install)

try:
    _extension = importlib.import_module("igrsr._C")
    _import_error: Optional[str] = None
except ImportError as error:  # not built, or undefined symbols of a build for another torch
    _extension = None
    _import_error = str(error)
_build_error: Optional[str] = None
_build_tried = False
_on_load: List[Callable[[], None]] = []
_lock = threading.Lock()


def load_error() -> Optional[str]:
    """``None`` once the extension is loaded (compiled first where it must be), else why it is
    not available.  Only the first call can compile; it is thread-safe."""
    global _extension, _build_error, _build_tried
    if _extension is not None:
        return None
    with _lock:
        if not _build_tried:
            _build_tried = True
            module, _build_error = _build()
            if module is not None:
                for register in _on_load:
                    register()
                _extension = module  # published once its Python parts are registered
    return _build_error


def built_with_cuda() -> bool:
    """Whether igrsr._C is loaded and contains the CUDA kernels."""
    return load_error() is None and bool(_extension.built_with_cuda)


def when_loaded(register: Callable[[], None]) -> None:
    """Run ``register`` (an op's Python parts: fake impls, autograd) once the extension is
    loaded: now if it is, else right after it is compiled at first use."""
    if _extension is not None:
        register()
    else:
        _on_load.append(register)


def _unavailable(reason: str) -> str:
    return f"the compiled extension igrsr._C is not available: {reason}"


def _build():
    """(module, None) from compiling the extension into its cache folder, or (None, reason)."""
    not_loaded = f"igrsr._C does not load ({_import_error})"
    if os.environ.get(BUILD_SWITCH, "1") == "0":
        return None, _unavailable(
            f"{not_loaded} and {BUILD_SWITCH}=0 turns off compiling it at first use; build it with "
            "`pip install --no-build-isolation -e .` in an environment that has torch"
        )
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as error:
        return None, _unavailable(f"{not_loaded}, and compiling it needs torch.utils.cpp_extension ({error})")
    csrc = extension_sources.csrc_dir()
    if not csrc.is_dir():
        return None, _unavailable(f"{not_loaded}, and its sources are not in {csrc} to compile it")
    with_cuda = torch.version.cuda is not None and extension_sources.nvcc_found(cpp_extension.CUDA_HOME)
    flags = extension_sources.build_flags(torch, with_cuda)
    defines = ["-DIGRSR_WITH_CUDA=1"] if with_cuda else []
    build_dir = _cache_root() / _build_name(torch, csrc, with_cuda, flags)
    try:
        sources = _copy_sources(csrc, build_dir / "csrc")
    except OSError as error:
        return None, _unavailable(f"{not_loaded}, and the folder to compile it in cannot be written ({error})")
    if not (build_dir / f"{MODULE_NAME}.so").exists():
        kernels = "C++ and CUDA" if with_cuda else "C++"
        print(
            f"igrsr: compiling the {kernels} InfoNCE kernels for torch {torch.__version__} into {build_dir} "
            "(first use only; about a minute)",
            file=sys.stderr,
            flush=True,
        )
    try:
        with _ninja_on_path():
            module = cpp_extension.load(
                name=MODULE_NAME,
                sources=extension_sources.extension_sources(sources, with_cuda),
                extra_cflags=flags["cxx"] + defines,
                extra_cuda_cflags=flags.get("nvcc", []) + defines,
                extra_ldflags=flags["ld"],
                extra_include_paths=[str(sources)],
                build_directory=str(build_dir),
                with_cuda=with_cuda,
            )
    except (RuntimeError, OSError, ImportError) as error:  # compiler errors come as RuntimeError
        log = build_dir / "build.log"
        log.write_text(str(error), encoding="utf-8")
        return None, _unavailable(f"{not_loaded}, and compiling it failed: {compiler_message(str(error))} (log: {log})")
    return module, None


def _copy_sources(csrc: Path, target: Path) -> Path:
    """The sources, copied into the build folder once: ninja knows files by their path, so the
    same sources elsewhere (a checkout's, then a wheel's) reuse the build instead of redoing it."""
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".csrc."))
        for path in extension_sources.shipped_files(csrc):
            copy = staging / path.relative_to(csrc)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        try:
            staging.rename(target)
        except OSError:  # another process put its copy there first
            shutil.rmtree(staging)
    return target


def compiler_message(output: str, lines: int = 2) -> str:
    """The first ``error`` lines of a build's output, on one line (else its last line)."""
    text = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in text if "error" in line.lower() and not line.startswith("Error building extension")]
    return " | ".join(errors[:lines] or text[-1:])


def _cache_root() -> Path:
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / "igrsr"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "igrsr"


def _build_name(torch, csrc: Path, with_cuda: bool, flags) -> str:
    """``torch<version>-<cpu|cuda>-<digest>``: the digest covers everything the build depends on."""
    hasher = hashlib.sha1()
    key = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda if with_cuda else None,
        # Unset, torch compiles for the GPUs it sees.
        "cuda_arch": _cuda_architectures(torch) if with_cuda else None,
        "python": sys.implementation.cache_tag,
        "flags": flags,
    }
    hasher.update(json.dumps(key, sort_keys=True).encode())
    for path in extension_sources.shipped_files(csrc):
        hasher.update(path.relative_to(csrc).as_posix().encode() + b"\0" + path.read_bytes())
    return f"torch{torch.__version__}-{'cuda' if with_cuda else 'cpu'}-{hasher.hexdigest()[:12]}"


def _cuda_architectures(torch) -> str:
    listed = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if listed:
        return listed
    capabilities = {torch.cuda.get_device_capability(index) for index in range(torch.cuda.device_count())}
    return ";".join(f"{major}.{minor}" for major, minor in sorted(capabilities))


@contextmanager
def _ninja_on_path():
    """The ninja of the ``ninja`` package on PATH where none is (a virtual environment's bin/
    is not on PATH unless activated); torch's build calls ``ninja`` by name."""
    path = os.environ.get("PATH", "")
    try:
        if shutil.which("ninja") is None:
            try:
                import ninja

                os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
            except ImportError:
                pass  # torch says that ninja is needed
        yield
    finally:
        os.environ["PATH"] = path


__all__ = ["BUILD_SWITCH", "built_with_cuda", "compiler_message", "load_error", "when_loaded"]
