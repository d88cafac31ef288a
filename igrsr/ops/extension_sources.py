"""The C++/CUDA sources of ``igrsr._C``, found by naming convention, and how they are compiled
(stdlib only).

setup.py loads this file by path (importing :mod:`igrsr` needs torch, which a build may lack),
so it imports nothing from igrsr; :mod:`igrsr.ops.extension` uses it too, to build the extension
at first use.  The sources are ``csrc/`` beside the package in a checkout, and the package's
``_csrc/`` in an installed wheel (setup.py ships them there).  The convention
(docs/adding-an-op.md):

- ``csrc/*.cpp``: the module itself (``module.cpp``);
- ``csrc/<op>/core_*.cpp``, ``core_*.cu``: torch-free kernels (also built by CMakeLists.txt
  with the C++ tests);
- ``csrc/<op>/torch_*.cpp``: the torch bindings (op schema, CPU and CUDA implementations);
- ``*_cuda.cpp`` and ``*.cu`` are compiled only in a CUDA build.

Anything else in ``csrc/<op>/`` (headers, ``tests/``) is not compiled into the extension; a
``.cpp`` or ``.cu`` there that follows neither prefix is an error rather than silently left out.
"""

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Union

SOURCE_SUFFIXES = (".cpp", ".cu")
OP_SOURCE_PREFIXES = ("core_", "torch_")
# Every file a build reads: the sources and the headers they include.
SHIPPED_SUFFIXES = (*SOURCE_SUFFIXES, ".h", ".cuh")
TESTS = "tests"  # csrc/<op>/tests/: C++ tests (CMake), not part of the extension


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


def extension_sources(csrc: Union[str, Path], with_cuda: bool) -> List[str]:
    """Paths, under the sources folder ``csrc`` (as given: relative stays relative) and sorted,
    of every source compiled into ``igrsr._C``; the CUDA ones only when ``with_cuda``."""
    csrc = Path(csrc)
    sources = sorted(p for p in csrc.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    for op_dir in op_dirs(csrc):
        sources += op_sources(op_dir)
    if not with_cuda:
        sources = [p for p in sources if not needs_cuda(p.name)]
    return [p.as_posix() for p in sources]


def op_dirs(csrc: Path) -> List[Path]:
    return sorted(p for p in Path(csrc).iterdir() if p.is_dir() and p.name != TESTS)


def shipped_files(csrc: Union[str, Path]) -> List[Path]:
    """Every file of ``csrc`` a build reads (sources and headers, not the C++ tests), sorted."""
    csrc = Path(csrc)
    files = [p for p in csrc.iterdir() if p.is_file()]
    for op_dir in op_dirs(csrc):
        files += [p for p in op_dir.iterdir() if p.is_file()]
    return sorted(p for p in files if p.suffix in SHIPPED_SUFFIXES)


def csrc_dir() -> Path:
    """The sources: the package's ``_csrc/`` where a wheel installed them, else the checkout's
    ``csrc/`` beside the package."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "_csrc"
    return shipped if shipped.is_dir() else package.parent / "csrc"


def openmp_flags(torch) -> List[str]:
    """-fopenmp where ATen parallelizes with OpenMP: its at::parallel_for is a header template
    whose ``#pragma omp`` only takes effect in code compiled with OpenMP."""
    backend = torch.__config__.parallel_info().split("ATen parallel backend:")[-1]
    return ["-fopenmp"] if sys.platform.startswith("linux") and "OpenMP" in backend else []


def nvcc_found(cuda_home: Optional[str]) -> bool:
    return cuda_home is not None and os.path.exists(os.path.join(cuda_home, "bin", "nvcc"))


def build_flags(torch, with_cuda: bool) -> Dict[str, List[str]]:
    """The compiler flags (``cxx``, ``nvcc`` in a CUDA build) and linker flags (``ld``) of
    ``igrsr._C``; the macro ``IGRSR_WITH_CUDA=1`` marks a CUDA build."""
    openmp = openmp_flags(torch)
    # -fno-trapping-math lets the compiler turn the float selects of the CPU kernel's inner
    # loops into vector blends; nothing here reads floating-point exception flags.
    flags = {"cxx": ["-O3", "-fno-trapping-math", *openmp], "ld": openmp}
    if with_cuda:
        flags["nvcc"] = ["-O3"]
    return flags
