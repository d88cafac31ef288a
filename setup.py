"""Build and install igrsr.

Where torch is importable at build time (``pip install --no-build-isolation``) the compiled
InfoNCE extension ``igrsr._C`` is built as well: CUDA and CPU kernels where torch has CUDA
and nvcc is found (for ``TORCH_CUDA_ARCH_LIST``, by default "8.0;9.0"), the CPU kernel
otherwise.  Without torch, or with ``IGRSR_BUILD_EXTENSION=0``, the package is pure Python
and ``igrsr.ops`` runs its reference kernels.
"""

import importlib.util
import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def load_extension_sources():
    """igrsr/ops/extension_sources.py, loaded by path: importing igrsr itself needs torch."""
    path = os.path.join(HERE, "igrsr", "ops", "extension_sources.py")
    spec = importlib.util.spec_from_file_location("igrsr_extension_sources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.extension_sources


def openmp_flags(torch):
    """-fopenmp where ATen parallelizes with OpenMP: its at::parallel_for is a header template
    whose ``#pragma omp`` only takes effect in code compiled with OpenMP."""
    backend = torch.__config__.parallel_info().split("ATen parallel backend:")[-1]
    return ["-fopenmp"] if sys.platform.startswith("linux") and "OpenMP" in backend else []


def nvcc_found(cuda_home):
    return cuda_home is not None and os.path.exists(os.path.join(cuda_home, "bin", "nvcc"))


def extension_build():
    """(ext_modules, cmdclass) building igrsr._C, or nothing when it cannot or should not be built."""
    if os.environ.get("IGRSR_BUILD_EXTENSION", "1") == "0":
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return [], {}
    extension_sources = load_extension_sources()
    openmp = openmp_flags(torch)
    # -fno-trapping-math lets the compiler turn the float selects of the CPU kernel's inner
    # loops into vector blends; nothing here reads floating-point exception flags.
    compile_args = {"cxx": ["-O3", "-fno-trapping-math", *openmp]}
    options = dict(
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args=compile_args,
        extra_link_args=openmp,
    )
    if torch.version.cuda is not None and nvcc_found(cpp_extension.CUDA_HOME):
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        compile_args["nvcc"] = ["-O3"]
        extension = cpp_extension.CUDAExtension(
            "igrsr._C",
            extension_sources(HERE, with_cuda=True),
            define_macros=[("IGRSR_WITH_CUDA", "1")],
            **options,
        )
    else:
        sources = extension_sources(HERE, with_cuda=False)
        extension = cpp_extension.CppExtension("igrsr._C", sources, **options)
    return [extension], {"build_ext": cpp_extension.BuildExtension}


ext_modules, cmdclass = extension_build()

# Everything else (name, version, dependencies, packages) is in pyproject.toml.
setup(ext_modules=ext_modules, cmdclass=cmdclass)
