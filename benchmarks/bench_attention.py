"""Attention benchmarks: the Triton kernels against the PyTorch reference and public peers.

    pytest benchmarks/bench_attention.py --benchmark-only

``causal_attention`` (prefix + causal, as IGR-SR uses it) runs on: ``triton`` (ours),
``reference``, FlexAttention with a prefix+causal block mask, and
``scaled_dot_product_attention`` on its flash backend, which has no prefix keys and so runs
plain causal attention (nearly the same work).  ``intent_cross_attention`` runs on
``triton`` and ``reference``.  Both in forward and forward+backward.

On a GPU: bfloat16, head dim 64, L in {256, 1024, 4096, 16384} with B·H·L fixed, so B·H = 32
at L = 16384; a backend that runs out of memory is skipped with the reason.  Without a GPU
only the reference and the interpreted kernels run, at tiny sizes: a smoke test whose
timings mean nothing.

``benchmark.extra_info`` holds the shape, TFLOP/s (causal; causal FLOPs counted once, the
backward as 2.5× the forward, the same count for every backend), GB/s (cross-attention;
the minimum bytes each pass must move) and, on a GPU, the peak memory the step allocates
above its inputs.
"""

import functools

import pytest
import torch
from conftest import cuda_peak_mib, reset_cuda_peak

from igrsr.ops import causal_attention, intent_cross_attention

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
DTYPE = torch.bfloat16
HEAD_DIM = 64
NUM_PREFIX = 4
NUM_INTENTS = 4
HEADS = 8 if ON_GPU else 2
SEQ_LENS = (256, 1024, 4096, 16384) if ON_GPU else (64, 128)
# B·H·L stays at 32 · 16384 on a GPU so short sequences still fill it; tiny on the CPU.
TOKENS = 32 * 16384 if ON_GPU else 2 * 128
MODES = ("forward", "forward_backward")
BACKWARD_FLOPS_FACTOR = 2.5  # dq, dk, dv plus recomputing the scores: FlashAttention's count


def shape(seq_len):
    """(B, H, L, D) with B·H·L = TOKENS."""
    batch = max(1, TOKENS // (seq_len * HEADS))
    return batch, HEADS, seq_len, HEAD_DIM


def random_inputs(*shapes, requires_grad):
    return [torch.randn(s, device=DEVICE, dtype=DTYPE).requires_grad_(requires_grad) for s in shapes]


def forward_or_training_step(function, inputs, mode):
    """The callable to time: the forward, or the forward and the input gradients."""
    if mode == "forward":
        return lambda: function(*inputs)

    def step():
        out = function(*inputs)
        return torch.autograd.grad(out, inputs, torch.ones_like(out))

    return step


def time_it(benchmark, step):
    """Run ``step`` under pytest-benchmark; returns the median seconds (None if disabled)."""
    if ON_GPU:
        baseline = reset_cuda_peak()

        def synchronized():
            step()
            torch.cuda.synchronize()

        try:
            benchmark.pedantic(synchronized, rounds=10, warmup_rounds=2)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            pytest.skip(f"out of GPU memory ({benchmark.group})")
        benchmark.extra_info["peak_memory_mib"] = cuda_peak_mib(baseline)
    else:
        benchmark.pedantic(step, rounds=2, warmup_rounds=1)
    return benchmark.stats.stats.median if benchmark.stats else None


# --------------------------------------------------------------------------- causal


def prefix_causal(batch, head, query, key):
    return (key <= query) | (key < NUM_PREFIX)


@functools.lru_cache(maxsize=None)
def compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


def causal_function(backend, seq_len):
    """(q, k, v) → output for one backend."""
    if backend in ("triton", "reference"):
        return lambda q, k, v: causal_attention(q, k, v, num_prefix=NUM_PREFIX, backend=backend)
    if backend == "sdpa_flash":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def sdpa(q, k, v):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

        return sdpa
    from torch.nn.attention.flex_attention import create_block_mask

    block_mask = create_block_mask(prefix_causal, None, None, seq_len, seq_len, device=DEVICE)
    flex = compiled_flex_attention()
    return lambda q, k, v: flex(q, k, v, block_mask=block_mask)


def causal_flops(batch, heads, seq_len, head_dim, mode):
    forward = 4 * batch * heads * seq_len * seq_len * head_dim / 2  # two matmuls, half masked
    return forward * (1 if mode == "forward" else 1 + BACKWARD_FLOPS_FACTOR)


CAUSAL_BACKENDS = [
    "triton",
    "reference",
    pytest.param("sdpa_flash", marks=pytest.mark.skipif(not ON_GPU, reason="flash SDPA needs a CUDA GPU")),
    pytest.param("flex", marks=pytest.mark.skipif(not ON_GPU, reason="FlexAttention is benchmarked on GPU only")),
]


def causal_attention_step(backend, mode, seq_len):
    """The timed step of one causal-attention case on fresh random inputs."""
    dims = shape(seq_len)
    inputs = random_inputs(dims, dims, dims, requires_grad=mode != "forward")
    return forward_or_training_step(causal_function(backend, seq_len), inputs, mode)


@pytest.mark.parametrize("seq_len", SEQ_LENS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", CAUSAL_BACKENDS)
def test_causal_attention(benchmark, backend, mode, seq_len):
    dims = shape(seq_len)
    benchmark.group = f"causal_attention {mode} L={seq_len}"
    benchmark.extra_info.update(backend=backend, shape=list(dims), dtype=str(DTYPE), num_prefix=NUM_PREFIX)
    seconds = time_it(benchmark, causal_attention_step(backend, mode, seq_len))
    if seconds:
        benchmark.extra_info["tflops"] = causal_flops(*dims, mode) / seconds / 1e12


# --------------------------------------------------------------------------- cross


def cross_bytes(batch, heads, seq_len, head_dim, mode):
    """Minimum traffic: forward reads q, k, v and writes out; the backward reads q, dout,
    k, v and writes dq, dk, dv."""
    query_sized = batch * heads * seq_len * head_dim
    intent_sized = batch * heads * NUM_INTENTS * head_dim
    elements = 2 * query_sized + 2 * intent_sized
    if mode == "forward_backward":
        elements += 3 * query_sized + 4 * intent_sized
    return elements * DTYPE.itemsize


def cross_attention_step(backend, mode, seq_len):
    """The timed step of one cross-attention case on fresh random inputs."""
    batch, heads, _, head_dim = dims = shape(seq_len)
    intent_dims = (batch, heads, NUM_INTENTS, head_dim)
    inputs = random_inputs(dims, intent_dims, intent_dims, requires_grad=mode != "forward")
    mask = torch.ones(batch, NUM_INTENTS, dtype=torch.bool, device=DEVICE)
    mask[:, -1] = False  # as in intent-consistency training, some intents are dropped

    def cross(q, k, v):
        return intent_cross_attention(q, k, v, mask, backend=backend)

    return forward_or_training_step(cross, inputs, mode)


@pytest.mark.parametrize("seq_len", SEQ_LENS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_intent_cross_attention(benchmark, backend, mode, seq_len):
    dims = shape(seq_len)
    benchmark.group = f"intent_cross_attention {mode} L={seq_len}"
    benchmark.extra_info.update(backend=backend, shape=list(dims), num_intents=NUM_INTENTS, dtype=str(DTYPE))
    seconds = time_it(benchmark, cross_attention_step(backend, mode, seq_len))
    if seconds:
        benchmark.extra_info["gbps"] = cross_bytes(*dims, mode) / seconds / 1e9
