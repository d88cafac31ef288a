"""InfoNCE benchmarks: the compiled kernels against the eager PyTorch reference.

    pytest benchmarks/bench_info_nce.py --benchmark-only

One training step (forward and the gradients of both views), symmetric, L2-normalized,
float32, τ = 0.1, on:

- a GPU, when there is one: the CUDA kernel and the reference for B in {4096, 16384, 65536,
  262144} and d in {64, 128}.  The reference needs several B×B buffers (16 GiB each at
  B = 65536), so where it runs out of memory it is skipped and the OOM recorded;
- the CPU: the C++ kernel and the reference for B in {1024, 4096, 8192}, d = 64, on torch's
  intra-op threads.

Peak memory is measured, not estimated: on a GPU from the caching allocator's peak; on the
CPU from the process's peak resident set (VmHWM, reset through /proc/self/clear_refs before
the step), with glibc told to serve every allocation of 64 KiB or more by mmap so that each
buffer's pages are fresh and counted, and returned when freed.  Both are the increase over
what was resident before the step, inputs excluded.

``benchmark.extra_info`` holds the shape, the peak memory and, on the entry of the kernel
(run after its reference), ``speedup`` (reference time / kernel time) and ``memory_ratio``
(reference peak / kernel peak).
"""

import pytest
import torch
from conftest import peak_memory_bytes

from igrsr.ops import info_nce

ON_GPU = torch.cuda.is_available()
TEMPERATURE = 0.1
GPU_SHAPES = [(batch, dim) for dim in (64, 128) for batch in (4096, 16384, 65536, 262144)]
CPU_SHAPES = [(batch, 64) for batch in (1024, 4096, 8192)]
# (device, batch, dim, backend) -> (median seconds, peak bytes), or "oom"
MEASURED = {}


# --------------------------------------------------------------------------- the step


def training_step(backend, batch, dim, device):
    """forward + dL/dz1, dL/dz2 for one backend, on fixed random views."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    z1, z2 = (torch.randn(batch, dim, generator=generator).to(device).requires_grad_() for _ in range(2))

    def step():
        loss = info_nce(z1, z2, TEMPERATURE, backend=backend)
        return torch.autograd.grad(loss, (z1, z2))

    return step


def run_benchmark(benchmark, device, backend, batch, dim, rounds):
    benchmark.group = f"info_nce {device} B={batch} d={dim}"
    benchmark.extra_info.update(
        device=device,
        backend=backend,
        batch=batch,
        dim=dim,
        dtype="float32",
        symmetric=True,
        normalize=True,
        similarity_matrix_mib=batch * batch * 4 / 2**20,
    )
    key = (device, batch, dim)
    step = training_step(backend, batch, dim, device)
    try:
        peak = peak_memory_bytes(step, device)
        if device == "cuda":

            def synchronized():
                step()
                torch.cuda.synchronize()

            benchmark.pedantic(synchronized, rounds=rounds, warmup_rounds=1)
        else:
            benchmark.pedantic(step, rounds=rounds, warmup_rounds=1)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        MEASURED[key + (backend,)] = "oom"
        benchmark.extra_info["oom"] = True
        pytest.skip(f"{backend}: out of GPU memory at B={batch}, d={dim}")
    median = benchmark.stats.stats.median if benchmark.stats else None
    MEASURED[key + (backend,)] = (median, peak)
    if peak is not None:
        benchmark.extra_info["peak_memory_mib"] = peak / 2**20
    if backend != "reference":
        record_ratios(benchmark, key, median, peak)


def record_ratios(benchmark, key, median, peak):
    reference = MEASURED.get(key + ("reference",))
    if reference == "oom":
        benchmark.extra_info["reference"] = "out of memory"
    elif reference is not None and median:
        reference_median, reference_peak = reference
        benchmark.extra_info["speedup"] = reference_median / median
        if peak and reference_peak:
            benchmark.extra_info["memory_ratio"] = reference_peak / peak


# --------------------------------------------------------------------------- suites


@pytest.mark.parametrize("backend", ["reference", "cuda"])  # the reference first: its numbers feed the ratios
@pytest.mark.parametrize("batch, dim", GPU_SHAPES, ids=[f"B{b}-d{d}" for b, d in GPU_SHAPES])
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
def test_info_nce_gpu(benchmark, backend, batch, dim):
    run_benchmark(benchmark, "cuda", backend, batch, dim, rounds=3 if batch >= 65536 else 10)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("batch, dim", CPU_SHAPES, ids=[f"B{b}-d{d}" for b, d in CPU_SHAPES])
def test_info_nce_cpu(benchmark, backend, batch, dim):
    run_benchmark(benchmark, "cpu", backend, batch, dim, rounds=3)
