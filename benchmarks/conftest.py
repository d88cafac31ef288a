"""Benchmark set-up: interpreter mode without a GPU, and versions in the JSON."""

import ctypes
import datetime
import functools
import gc
import os
import platform

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

ON_GPU = torch.cuda.is_available()


def pytest_benchmark_update_machine_info(config, machine_info):
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    machine_info["igrsr"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if ON_GPU else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton_version,
        "triton_interpret": os.environ.get("TRITON_INTERPRET"),
        "cpu_threads": torch.get_num_threads(),
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_benchmark_generate_json(config, benchmarks, include_data, machine_info, commit_info):
    """A benchmark cut short (a time limit's SIGINT, a per-test timeout) has no rounds, and
    pytest-benchmark would fail on it and write no JSON at all, losing every benchmark that
    finished: mark it as failed, which pytest-benchmark leaves out of the JSON."""
    for bench in benchmarks:
        if not bench.stats.data:
            bench.fixture.has_error = True
    yield


def reset_cuda_peak() -> int:
    """Frees what earlier cases left and resets the peak; returns the bytes allocated now, the
    baseline that :func:`cuda_peak_mib` subtracts (a case's inputs are part of it)."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def cuda_peak_mib(baseline: int) -> float:
    """Peak allocated memory above ``baseline`` since :func:`reset_cuda_peak`, in MiB: what the
    step itself needed, whatever earlier cases still hold."""
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - baseline) / 2**20


# --------------------------------------------------------------------------- peak memory


class CpuPeakMemory:
    """Peak resident memory of this process above its level at start(), in bytes (Linux)."""

    def __init__(self):
        self.available = os.path.exists("/proc/self/clear_refs")
        if self.available:
            libc = ctypes.CDLL("libc.so.6")
            m_mmap_threshold = -3
            libc.mallopt(m_mmap_threshold, 64 * 1024)  # fixed, so large frees unmap at once

    @staticmethod
    def _status_kib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc/self/status")

    def start(self):
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current resident size
        self._baseline = self._status_kib("VmRSS")

    def peak_bytes(self):
        return (self._status_kib("VmHWM") - self._baseline) * 1024


@functools.lru_cache(maxsize=None)
def cpu_peak() -> CpuPeakMemory:
    """The process's one tracker, made at first use: only the suites that measure CPU memory
    change glibc's mmap threshold."""
    return CpuPeakMemory()


def peak_memory_bytes(step, device):
    """Runs ``step`` once and returns the memory it needed at its peak."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    tracker = cpu_peak()
    if not tracker.available:
        return None
    tracker.start()
    step()
    return tracker.peak_bytes()
