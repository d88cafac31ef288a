"""Linear cross-entropy benchmarks: forward + backward of the catalog loss, d = 64.

    pytest benchmarks/bench_linear_cross_entropy.py --benchmark-only

One training step of ``linear_cross_entropy(hidden, weight, targets)`` (mean over rows, the
gradients of hidden and weight) at N classes in {12,101 (Beauty); 100,000; 1,000,000} and
rows in {2,048; 16,384}, plus Beauty's own batch (1,450 target rows of 256 users):

- the CPU, float32: the ``reference`` (the rows × N logits materialized), that reference
  under ``torch.compile``, and ``chunked``.  A case whose logits would not fit the memory
  available now (the reference holds about three rows × N float32 buffers at its peak) is
  skipped with the reason, as are the chunked cases of more than 2,048 × 10^6 logits: minutes
  per step on a few CPU cores;
- a GPU, when there is one, bfloat16: ``reference``, ``chunked``, ``triton`` and the public
  peers Liger-Kernel (``LigerFusedLinearCrossEntropyLoss``) and Apple's Cut Cross-Entropy
  (``cut_cross_entropy.linear_cross_entropy``) where they are installed; out of memory is
  recorded and skipped.

Peak memory (``peak_memory_mib`` in ``benchmark.extra_info``) is measured by
``conftest.peak_memory_bytes``: the process's peak resident set on the CPU, the caching
allocator's peak on a GPU, above what was held before the step (inputs excluded; the
gradients included).  Entries after the reference have ``speedup`` (reference time / this
time) and ``memory_ratio`` (reference peak / this peak).
"""

import functools

import pytest
import torch
from conftest import peak_memory_bytes

from igrsr.ops import linear_cross_entropy

ON_GPU = torch.cuda.is_available()
DIM = 64
BEAUTY = (1450, 12101)
SHAPES = [BEAUTY] + [(rows, classes) for classes in (12101, 100_000, 1_000_000) for rows in (2048, 16384)]
CPU_MAX_LOGITS = 2048 * 1_000_000
# Buffers of rows × N the reference holds at its peak: the logits' log-softmax, the gradient
# coming into it and the gradient going out (float32 on the CPU).
REFERENCE_BUFFERS = 3
CPU_BACKENDS = ["reference", "compiled-reference", "chunked"]  # the reference first: it feeds the ratios
GPU_BACKENDS = ["reference", "chunked", "triton", "liger", "cut-cross-entropy"]
# (device, rows, classes, backend) -> (median seconds, peak bytes), or "oom"
MEASURED = {}


def shape_id(shape):
    return f"R{shape[0]}-N{shape[1]}"


def available_cpu_bytes():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


# --------------------------------------------------------------------------- the losses


@functools.lru_cache(maxsize=None)
def compiled_reference():
    return torch.compile(functools.partial(linear_cross_entropy, backend="reference"))


def peer_loss(backend):
    """The public peers' losses, as (hidden, weight, targets) -> mean loss; skips where absent."""
    if backend == "liger":
        liger = pytest.importorskip("liger_kernel.transformers", reason="Liger-Kernel is not installed")
        loss = liger.LigerFusedLinearCrossEntropyLoss()
        return lambda hidden, weight, targets: loss(weight, hidden, targets)
    cce = pytest.importorskip("cut_cross_entropy", reason="cut-cross-entropy is not installed")
    return lambda hidden, weight, targets: cce.linear_cross_entropy(hidden, weight, targets)


def loss_function(backend):
    if backend == "compiled-reference":
        return compiled_reference()
    if backend in ("liger", "cut-cross-entropy"):
        return peer_loss(backend)
    return functools.partial(linear_cross_entropy, backend=backend)


def training_step(backend, rows, classes, device, dtype):
    """forward + grads of hidden and weight, on fixed random inputs (weight rows ~ 1/sqrt(d))."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(rows, DIM, generator=generator).to(device, dtype).requires_grad_()
    weight = (torch.randn(classes, DIM, generator=generator) / DIM**0.5).to(device, dtype).requires_grad_()
    targets = torch.randint(0, classes, (rows,), generator=generator).to(device)
    loss = loss_function(backend)

    def step():
        return torch.autograd.grad(loss(hidden, weight, targets), (hidden, weight))

    if device != "cuda":
        return step

    def synchronized():
        result = step()
        torch.cuda.synchronize()
        return result

    return synchronized


# --------------------------------------------------------------------------- measuring


def run_benchmark(benchmark, device, dtype, backend, rows, classes):
    benchmark.group = f"linear_cross_entropy {device} R={rows} N={classes}"
    benchmark.extra_info.update(
        device=device,
        backend=backend,
        rows=rows,
        classes=classes,
        dim=DIM,
        dtype=str(dtype).replace("torch.", ""),
        logits_mib=rows * classes * dtype.itemsize / 2**20,
    )
    key = (device, rows, classes)
    try:
        step = training_step(backend, rows, classes, device, dtype)
        if backend == "compiled-reference":
            step()  # compiles, out of the peak memory
        peak = peak_memory_bytes(step, device)  # also the warm-up
        benchmark.pedantic(step, rounds=1 if rows * classes >= 10**9 else 3, warmup_rounds=0)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        MEASURED[key + (backend,)] = "oom"
        benchmark.extra_info["oom"] = True
        pytest.skip(f"{backend}: out of GPU memory at R={rows}, N={classes}")
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


def skip_cpu_case(backend, rows, classes):
    """Skips, with the reason, the CPU cases too large for this machine now."""
    if rows * classes > CPU_MAX_LOGITS:
        pytest.skip(f"R={rows} × N={classes}: minutes per step on a CPU")
    if backend == "chunked":
        return
    needed = REFERENCE_BUFFERS * rows * classes * 4
    available = available_cpu_bytes()
    if available is not None and needed > 0.8 * available:
        pytest.skip(
            f"{backend} needs about {needed / 2**30:.1f} GiB for its R×N buffers; "
            f"{available / 2**30:.1f} GiB are available"
        )


# --------------------------------------------------------------------------- suites


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("rows, classes", SHAPES, ids=[shape_id(s) for s in SHAPES])
def test_linear_cross_entropy_cpu(benchmark, backend, rows, classes):
    skip_cpu_case(backend, rows, classes)
    run_benchmark(benchmark, "cpu", torch.float32, backend, rows, classes)


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("rows, classes", SHAPES, ids=[shape_id(s) for s in SHAPES])
def test_linear_cross_entropy_gpu(benchmark, backend, rows, classes):
    run_benchmark(benchmark, "cuda", torch.bfloat16, backend, rows, classes)
