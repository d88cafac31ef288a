"""Build and install igrsr.

Where torch is importable at build time (``pip install --no-build-isolation``, scripts/install.sh)
the compiled InfoNCE extension ``igrsr._C`` is built as well: CUDA and CPU kernels where torch has
CUDA and nvcc is found (for ``TORCH_CUDA_ARCH_LIST``, by default "8.0;9.0"), the CPU kernel
otherwise.  Without torch (``pip install .`` or ``pip install -e .`` with build isolation), or
with ``IGRSR_BUILD_EXTENSION=0``, nothing is compiled here: the C++/CUDA sources ship inside the
package (``igrsr/_csrc/``) and :mod:`igrsr.ops.extension` compiles them against the installed
torch at the first use of a compiled backend.
"""

import importlib.util
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"
SHIPPED_SOURCES = "igrsr._csrc"  # the package the sources are installed as


def load_extension_sources():
    """igrsr/ops/extension_sources.py, loaded by path: importing igrsr itself needs torch."""
    path = os.path.join(HERE, "igrsr", "ops", "extension_sources.py")
    spec = importlib.util.spec_from_file_location("igrsr_extension_sources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_paths(sources, with_cuda):
    """The extension's sources relative to this folder, as setuptools wants them."""
    return [os.path.relpath(path, HERE) for path in sources.extension_sources(os.path.join(HERE, CSRC), with_cuda)]


def extension_build(sources):
    """(ext_modules, cmdclass) building igrsr._C, or nothing when it cannot or should not be built."""
    if os.environ.get("IGRSR_BUILD_EXTENSION", "1") == "0":
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return [], {}
    with_cuda = torch.version.cuda is not None and sources.nvcc_found(cpp_extension.CUDA_HOME)
    flags = sources.build_flags(torch, with_cuda)
    options = dict(
        include_dirs=[os.path.join(HERE, CSRC)],
        extra_compile_args={name: flags[name] for name in ("cxx", "nvcc") if name in flags},
        extra_link_args=flags["ld"],
    )
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        extension = cpp_extension.CUDAExtension(
            "igrsr._C",
            source_paths(sources, with_cuda=True),
            define_macros=[("IGRSR_WITH_CUDA", "1")],
            **options,
        )
    else:
        extension = cpp_extension.CppExtension("igrsr._C", source_paths(sources, with_cuda=False), **options)
    return [extension], {"build_ext": cpp_extension.BuildExtension}


def shipped_sources(sources):
    """The packages and package data that install csrc/ as igrsr/_csrc/ (the C++ tests left out)."""
    files = [os.path.relpath(path, CSRC) for path in sources.shipped_files(os.path.join(HERE, CSRC))]
    folders = sorted({os.path.dirname(name) for name in files})
    packages = {".".join([SHIPPED_SOURCES, *filter(None, folder.split(os.sep))]): folder for folder in folders}
    package_data = {
        package: [os.path.basename(name) for name in files if os.path.dirname(name) == folder]
        for package, folder in packages.items()
    }
    return list(packages), package_data


extension_sources = load_extension_sources()
ext_modules, cmdclass = extension_build(extension_sources)
csrc_packages, csrc_data = shipped_sources(extension_sources)

# Everything else (name, version, dependencies) is in pyproject.toml.
setup(
    packages=[*find_packages(include=["igrsr", "igrsr.*"]), *csrc_packages],
    package_dir={SHIPPED_SOURCES: CSRC},
    package_data=csrc_data,
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
