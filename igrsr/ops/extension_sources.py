"""The C++/CUDA sources of ``igrsr._C``, found by naming convention (stdlib only).

setup.py loads this file by path (importing :mod:`igrsr` needs torch, which a build may lack),
so it imports nothing from igrsr.  The convention (docs/adding-an-op.md):

- ``csrc/*.cpp``: the module itself (``module.cpp``);
- ``csrc/<op>/core_*.cpp``, ``core_*.cu``: torch-free kernels (also built by CMakeLists.txt
  with the C++ tests);
- ``csrc/<op>/torch_*.cpp``: the torch bindings (op schema, CPU and CUDA implementations);
- ``*_cuda.cpp`` and ``*.cu`` are compiled only in a CUDA build.

Anything else in ``csrc/<op>/`` (headers, ``tests/``) is not compiled into the extension; a
``.cpp`` or ``.cu`` there that follows neither prefix is an error rather than silently left out.
"""

from pathlib import Path
from typing import List, Union

SOURCE_SUFFIXES = (".cpp", ".cu")
OP_SOURCE_PREFIXES = ("core_", "torch_")


def needs_cuda(name: str) -> bool:
    return name.endswith(".cu") or name.endswith("_cuda.cpp")


def op_sources(op_dir: Path) -> List[Path]:
    """The compiled sources of one op folder ``csrc/<op>/``, all of them (CUDA ones included)."""
    sources = sorted(p for p in op_dir.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    stray = [p.name for p in sources if not p.name.startswith(OP_SOURCE_PREFIXES)]
    if stray:
        raise ValueError(
            f"{op_dir}: {stray} follow neither naming convention: torch-free sources are "
            f"core_*.cpp / core_*.cu, torch bindings torch_*.cpp (docs/adding-an-op.md)"
        )
    return sources


def extension_sources(root: Union[str, Path], with_cuda: bool) -> List[str]:
    """Paths, relative to the repository ``root`` and sorted, of every source compiled into
    ``igrsr._C``; the CUDA ones only when ``with_cuda``."""
    csrc = Path(root) / "csrc"
    sources = sorted(p for p in csrc.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    for op_dir in sorted(p for p in csrc.iterdir() if p.is_dir()):
        sources += op_sources(op_dir)
    if not with_cuda:
        sources = [p for p in sources if not needs_cuda(p.name)]
    return [p.relative_to(root).as_posix() for p in sources]
