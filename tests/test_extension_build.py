"""The compiled extension where it was not built at install: compiled at first use of a compiled
backend (never at import), its failure reported with the compiler's message, and its sources
shipped in the wheel.

The whole path in a fresh environment that has only torch (`pip install -e .` with build
isolation, then the compiled InfoNCE) takes minutes: scripts/check_fresh_install.sh, a step of
.ci/run, runs it.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from igrsr.ops import extension_sources
from igrsr.ops.extension import compiler_message

ROOT = Path(__file__).resolve().parents[1]

# In a fresh interpreter igrsr._C is made unimportable, as where it was never built, and the
# build reads the sources folder given as argv[1].
WITHOUT_BUILT_EXTENSION = """
import sys
from pathlib import Path
sys.modules["igrsr._C"] = None
import igrsr.ops.extension_sources as sources
sources.csrc_dir = lambda: Path(sys.argv[1])
import torch, igrsr
from igrsr.ops import BackendUnavailableError, info_nce
print("imported", flush=True)
try:
    info_nce(torch.randn(3, 2), torch.randn(3, 2), backend="cpu")
except BackendUnavailableError as error:
    print(error)
"""


def run_without_built_extension(csrc: Path, cache: Path, **env):
    environment = {**os.environ, "TORCH_EXTENSIONS_DIR": str(cache), **env}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_BUILT_EXTENSION, str(csrc)],
        capture_output=True, text=True, timeout=300, env=environment, cwd=ROOT,
    )  # fmt: skip


def test_a_failed_build_at_first_use_reports_the_compilers_error(tmp_path):
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    (csrc / "module.cpp").write_text("#include <pybind11/pybind11.h>\nthis is not C++;\n")
    result = run_without_built_extension(csrc, tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    imported, error = result.stdout.splitlines()
    (build_dir,) = (tmp_path / "cache" / "igrsr").iterdir()
    # One line while it compiles; the error has the compiler's line and where the full log is.
    assert result.stderr.splitlines() == [
        f"igrsr: compiling the C++ InfoNCE kernels for torch {torch.__version__} into {build_dir} "
        "(first use only; about a minute)"
    ]
    assert "igrsr._C is not available: igrsr._C does not load" in error
    # Compiled from a copy in the build folder (ninja knows files by path).
    assert f"compiling it failed: {build_dir / 'csrc' / 'module.cpp'}:2:1: error:" in error
    assert error.endswith(f"(log: {build_dir / 'build.log'})")
    assert "error:" in (build_dir / "build.log").read_text()


def test_import_never_compiles_and_the_switch_turns_compiling_off(tmp_path):
    result = run_without_built_extension(extension_sources.csrc_dir(), tmp_path / "cache", IGRSR_BUILD_EXTENSION="0")
    assert result.returncode == 0, result.stderr
    assert "IGRSR_BUILD_EXTENSION=0 turns off compiling it at first use" in result.stdout
    assert not (tmp_path / "cache").exists() and "compiling" not in result.stderr


def test_compiler_message_keeps_the_first_error_lines():
    output = (
        "Error building extension 'igrsr_C': [1/2] c++ -c a.cpp\nFAILED: a.o\n"
        "a.cpp:3:1: error: 'x' was not declared\na.cpp:4:1: error: expected ';'\nb.cpp:1:1: error: third\n"
        "ninja: build stopped: subcommand failed.\n"
    )
    assert compiler_message(output) == "a.cpp:3:1: error: 'x' was not declared | a.cpp:4:1: error: expected ';'"
    assert compiler_message("Ninja is required to load C++ extensions") == "Ninja is required to load C++ extensions"


def test_the_wheel_ships_every_source_the_build_reads(tmp_path):
    """A wheel built without torch's help (no extension compiled) holds csrc/ as igrsr/_csrc/,
    from which the same sources are found; the C++ tests stay out."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source)
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info")
    for folder in ("igrsr", "csrc"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    environment = {**os.environ, "IGRSR_BUILD_EXTENSION": "0"}
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*command, str(source)], check=True, env=environment, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("igrsr-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    csrc = ROOT / "csrc"
    shipped = {f"igrsr/_csrc/{path.relative_to(csrc).as_posix()}" for path in extension_sources.shipped_files(csrc)}
    assert shipped == {name for name in names if name.startswith("igrsr/_csrc/")}
    assert not any("/tests/" in name or name.endswith(".so") for name in names)
    installed = tmp_path / "installed" / "igrsr" / "_csrc"
    for with_cuda in (False, True):
        relative = [Path(p).relative_to(installed) for p in extension_sources.extension_sources(installed, with_cuda)]
        assert relative == [Path(p).relative_to(csrc) for p in extension_sources.extension_sources(csrc, with_cuda)]
    assert "igrsr/ops/extension.py" in names and "igrsr/cli/__init__.py" in names
