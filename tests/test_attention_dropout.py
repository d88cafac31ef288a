"""Attention-probability dropout of ``causal_attention`` and ``intent_cross_attention``, and the
layers' ``attn_dropout``.

The Triton kernels draw the keep-mask in-kernel (Philox, keyed by the position) and redraw it
in the backward; the references compute the same mask in PyTorch
(:mod:`igrsr.ops.attention_dropout`), so the backends are compared with identical masks.  On a
machine without a GPU the kernels run on Triton's interpreter (tests/conftest.py), hence the
small shapes.
"""

import math

import pytest
import torch
from test_triton_attention import (
    DEVICES,
    DTYPES,
    INTERPRETING,
    assert_within_reference_error,
    attention_inputs,
    intent_inputs,
    intent_mask,
    padding_mask,
    requires_triton,
    run_with_grads,
)

from igrsr.nn import CausalSelfAttention, CausalTransformerLayer, DeliberativeReasonerLayer, IntentCrossAttention
from igrsr.ops import causal_attention, intent_cross_attention
from igrsr.ops.attention_dropout import dropout_keep_mask

requires_triton_device = pytest.mark.skipif(
    not (INTERPRETING or torch.cuda.is_available()), reason="Triton needs a GPU or TRITON_INTERPRET=1"
)
BACKENDS = ["reference", pytest.param("triton", marks=[requires_triton, requires_triton_device])]


def causal_call(backend, device, batch=2, heads=2, length=21, head_dim=16, dtype=torch.float32):
    """(op, inputs, kwargs) of a causal-attention call with padding and prefix keys."""
    inputs = attention_inputs(batch, heads, length, head_dim, dtype, device)
    kwargs = dict(key_padding_mask=padding_mask("left", batch, length, device), num_prefix=2, backend=backend)
    return causal_attention, inputs, kwargs


def cross_call(backend, device, batch=2, heads=2, length=21, num_intents=5, head_dim=16, dtype=torch.float32):
    inputs = intent_inputs(batch, heads, length, num_intents, head_dim, dtype, device)
    kwargs = dict(intent_mask=intent_mask("user0_all_masked", batch, num_intents, device), backend=backend)
    return intent_cross_attention, inputs, kwargs


CALLS = [pytest.param(causal_call, id="causal"), pytest.param(cross_call, id="cross")]


def device_of(backend):
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- the mask


@pytest.mark.parametrize("device", DEVICES)
def test_kernels_drop_exactly_the_reference_mask(device):
    """With V = identity the output is the dropped probability matrix itself, so its zeros are
    the kernel's mask; every key is visible (all prefix) so a zero can only be a drop."""
    batch, heads, length, p, seed = 2, 3, 16, 0.4, 12345
    q, k, _ = attention_inputs(batch, heads, length, length, torch.float32, device)
    identity = torch.eye(length, device=device).expand(batch, heads, length, length).contiguous()
    out = causal_attention(q, k, identity, num_prefix=length, dropout_p=p, dropout_seed=seed, backend="triton")
    expected = dropout_keep_mask(seed, (batch, heads, length, length), p, device)
    assert torch.equal(out != 0, expected)

    num_intents = 5
    q, k, _ = intent_inputs(batch, heads, length, num_intents, length, torch.float32, device)
    v = identity[:, :, :num_intents].contiguous()
    out = intent_cross_attention(q, k, v, dropout_p=p, dropout_seed=seed, backend="triton")
    expected = dropout_keep_mask(seed, (batch, heads, length, num_intents), p, device)
    assert torch.equal(out[..., :num_intents] != 0, expected)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_keeps_one_minus_p_independently(p):
    """Keep rate within 5 standard errors of 1 - p over 2**20 draws, in each of the four Philox
    words, and neighbours independent (joint keep rate (1-p)**2)."""
    count = 1 << 20
    keep = dropout_keep_mask(2024, (count,), p, "cpu")
    tolerance = 5 * math.sqrt(p * (1 - p) / (count // 4))
    for lane in range(4):
        assert abs(keep[lane::4].double().mean().item() - (1 - p)) < tolerance
    both = (keep[:-1] & keep[1:]).double().mean().item()
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 / count)
    assert not torch.equal(keep, dropout_keep_mask(2025, (count,), p, "cpu"))


def test_output_is_unbiased():
    """The mean output over many seeds approaches the output without dropout (z-scores of the
    difference below 5 everywhere)."""
    q, k, v = attention_inputs(1, 2, 12, 16, torch.float64, "cpu")
    seeds = range(1000)
    plain = causal_attention(q, k, v, backend="reference")
    samples = torch.stack([causal_attention(q, k, v, dropout_p=0.3, dropout_seed=seed) for seed in seeds])
    standard_error = samples.std(dim=0) / math.sqrt(len(seeds))
    z_scores = (samples.mean(dim=0) - plain).abs() / standard_error.clamp_min(1e-12)
    assert z_scores.max().item() < 5
    assert (samples[0] != plain).any()


# --------------------------------------------------------------------------- ops


CAUSAL_DROPOUT_CASES = [
    # batch, heads, L, D, num_prefix, padding
    (3, 2, 37, 32, 0, "left"),  # ragged tail, an all-padding sequence
    (2, 1, 40, 16, 3, "random"),  # prefix keys, padding anywhere
]
CROSS_DROPOUT_CASES = [
    # batch, heads, L, m, D, mask
    (2, 1, 37, 3, 32, "user0_all_masked"),
    (2, 2, 20, 16, 16, "random"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CAUSAL_DROPOUT_CASES, ids=str)
def test_causal_dropout_matches_reference(case, dtype, device):
    """Forward and backward against the reference with the same mask (accuracy rule of
    tests/test_triton_attention.py)."""
    batch, heads, length, head_dim, num_prefix, padding_kind = case
    inputs = attention_inputs(batch, heads, length, head_dim, dtype, device)
    mask = padding_mask(padding_kind, batch, length, device)
    assert_within_reference_error(
        causal_attention, inputs, key_padding_mask=mask, num_prefix=num_prefix, dropout_p=0.3, dropout_seed=99
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CROSS_DROPOUT_CASES, ids=str)
def test_cross_dropout_matches_reference(case, dtype, device):
    batch, heads, length, num_intents, head_dim, mask_kind = case
    inputs = intent_inputs(batch, heads, length, num_intents, head_dim, dtype, device)
    mask = intent_mask(mask_kind, batch, num_intents, device)
    assert_within_reference_error(intent_cross_attention, inputs, intent_mask=mask, dropout_p=0.6, dropout_seed=3)


@requires_triton
@pytest.mark.skipif(not INTERPRETING, reason="GPU block sizes on the interpreter")
def test_gpu_block_sizes_with_dropout(monkeypatch):
    """The block sizes chosen for GPUs (a mask tile of 64 keys, the cross-attention's dropout
    config) drop the same probabilities as the reference."""
    from igrsr.ops.causal_attention import triton_kernels as causal_kernels
    from igrsr.ops.intent_cross_attention import triton_kernels as cross_kernels

    monkeypatch.setattr(causal_kernels, "is_interpreting", lambda: False)
    monkeypatch.setattr(cross_kernels, "is_interpreting", lambda: False)
    inputs = attention_inputs(2, 1, 150, 64, torch.float16, "cpu")
    mask = padding_mask("left", 2, 150, "cpu")
    assert_within_reference_error(
        causal_attention, inputs, key_padding_mask=mask, num_prefix=70, dropout_p=0.3, dropout_seed=1
    )
    inputs = intent_inputs(1, 2, 150, 5, 64, torch.float32, "cpu")
    assert_within_reference_error(intent_cross_attention, inputs, dropout_p=0.3, dropout_seed=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", CALLS)
def test_zero_dropout_is_no_dropout(call, backend):
    """p = 0 gives bitwise the output and gradients of a call without dropout, and draws
    nothing from the generator (so models without attention dropout keep their numbers)."""
    op, inputs, kwargs = call(backend, device_of(backend))
    grad_out = torch.randn_like(inputs[0])
    plain = run_with_grads(op, inputs, grad_out, **kwargs)
    state = torch.random.get_rng_state()
    zero = run_with_grads(op, inputs, grad_out, dropout_p=0.0, **kwargs)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(plain, zero))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", CALLS)
def test_dropout_is_reproducible(call, backend):
    """The same seed gives bitwise the same output and gradients, another seed other ones;
    without a seed, torch.manual_seed decides it."""
    op, inputs, kwargs = call(backend, device_of(backend))
    grad_out = torch.randn_like(inputs[0])
    first = run_with_grads(op, inputs, grad_out, dropout_p=0.5, dropout_seed=5, **kwargs)
    again = run_with_grads(op, inputs, grad_out, dropout_p=0.5, dropout_seed=5, **kwargs)
    other = run_with_grads(op, inputs, grad_out, dropout_p=0.5, dropout_seed=6, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(not torch.equal(a, b) for a, b in zip(first, other))
    drawn = []
    for _ in range(2):
        torch.manual_seed(17)
        drawn.append(run_with_grads(op, inputs, grad_out, dropout_p=0.5, **kwargs))
    next_draw = run_with_grads(op, inputs, grad_out, dropout_p=0.5, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(*drawn))
    assert not torch.equal(drawn[0][0], next_draw[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", CALLS)
def test_backward_is_the_derivative_of_the_dropped_forward(call, backend):
    """A central difference of the forward along a random direction equals the backward's
    directional derivative: the backward redraws the forward's mask (float64 on the reference,
    which makes this a gradcheck; float32 on the kernels)."""
    dtype = torch.float64 if backend == "reference" else torch.float32
    op, inputs, kwargs = call(backend, device_of(backend), dtype=dtype)
    kwargs.update(dropout_p=0.4, dropout_seed=8)
    grad_out = torch.randn_like(inputs[0])
    _, *grads = run_with_grads(op, inputs, grad_out, **kwargs)
    directions = [torch.randn_like(t) for t in inputs]
    step = 1e-3 if dtype == torch.float32 else 1e-6

    def along(sign):
        return (op(*(t + sign * step * d for t, d in zip(inputs, directions)), **kwargs) * grad_out).sum()

    numeric = ((along(1) - along(-1)) / (2 * step)).item()
    analytic = sum((g * d).sum() for g, d in zip(grads, directions)).item()
    assert abs(numeric - analytic) <= (1e-2 if dtype == torch.float32 else 1e-6) * max(1.0, abs(analytic))


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(dropout_p=1.0), ValueError, r"dropout_p must be in \[0, 1\), got 1.0"),
        (dict(dropout_p=-0.1), ValueError, "dropout_p must be in"),
        (dict(dropout_p=float("nan")), ValueError, "dropout_p must be in"),
        (dict(dropout_p="0.1"), TypeError, "dropout_p must be a real number"),
        (dict(dropout_p=True), TypeError, "dropout_p must be a real number"),
        (dict(dropout_p=0.1, dropout_seed=-1), ValueError, "dropout_seed must be in"),
        (dict(dropout_p=0.1, dropout_seed=1 << 63), ValueError, "dropout_seed must be in"),
        (dict(dropout_p=0.1, dropout_seed=1.5), TypeError, "dropout_seed must be an int"),
    ],
    ids=["one", "negative", "nan", "string", "bool", "negative_seed", "huge_seed", "float_seed"],
)
def test_rejects_bad_dropout_arguments(call, kwargs, error, message):
    op, inputs, call_kwargs = call("reference", "cpu")
    with pytest.raises(error, match=message):
        op(*inputs, **call_kwargs, **kwargs)


# --------------------------------------------------------------------------- layers


def attention_layers(backend, attn_dropout, device="cpu"):
    """(layer, call) pairs: each attention layer and how to call it on small inputs."""
    x = torch.randn(3, 17, 32, device=device)
    intents = torch.randn(3, 4, 24, device=device)
    padding = padding_mask("left", 3, 17, device)
    causal = CausalSelfAttention(32, 2, backend=backend, attn_dropout=attn_dropout)
    cross = IntentCrossAttention(32, 2, d_intent=24, backend=backend, attn_dropout=attn_dropout)
    block = CausalTransformerLayer(32, 2, backend=backend, attn_dropout=attn_dropout)
    reasoner = DeliberativeReasonerLayer(32, 2, d_intent=24, backend=backend, attn_dropout=attn_dropout)
    torch.nn.init.normal_(reasoner.cross_attention.out.weight, std=0.1)  # let the cross-attention speak
    for layer in (causal, cross, block, reasoner):
        layer.to(device)
    return [
        (causal, lambda layer: layer(x, padding, num_prefix=2)),
        (cross, lambda layer: layer(x, intents)),
        (block, lambda layer: layer(x, padding)),
        (reasoner, lambda layer: layer(x, intents, padding)),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_drop_attention_in_training_only(backend):
    """Training mode: outputs differ from the layer without attention dropout, reproducibly
    under torch.manual_seed.  Eval mode: bitwise the output without it, nothing drawn."""
    device = device_of(backend)
    layers = zip(attention_layers(backend, 0.3, device), attention_layers(backend, 0.0, device))
    for (layer, call), (plain_layer, _) in layers:
        plain_layer.load_state_dict(layer.state_dict())
        torch.manual_seed(4)
        dropped = call(layer)
        torch.manual_seed(4)
        assert torch.equal(dropped, call(layer))
        assert not torch.allclose(dropped, call(plain_layer))
        layer.eval()
        plain_layer.eval()
        state = torch.random.get_rng_state()
        assert torch.equal(call(layer), call(plain_layer))
        assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("device", DEVICES)
def test_layers_drop_alike_on_both_backends(device):
    """Under the same torch.manual_seed the triton and reference layers draw the same seeds,
    hence the same masks: equal outputs and gradients in training mode."""
    torch.manual_seed(0)
    triton_layers = attention_layers("triton", 0.3, device)
    torch.manual_seed(0)
    reference_layers = attention_layers("reference", 0.3, device)
    for (triton_layer, call), (reference_layer, _) in zip(triton_layers, reference_layers):
        results = []
        for layer in (triton_layer, reference_layer):
            torch.manual_seed(2)
            out = call(layer)
            out.square().sum().backward()
            results.append([out] + [p.grad for p in layer.parameters()])
        for triton_result, reference_result in zip(*results):
            torch.testing.assert_close(triton_result, reference_result, atol=1e-5, rtol=1e-4)


def test_layers_reject_bad_attn_dropout():
    with pytest.raises(ValueError, match=r"attn_dropout must be in \[0, 1\)"):
        CausalSelfAttention(32, 2, attn_dropout=1.0)
    with pytest.raises(ValueError, match="attn_dropout must be in"):
        IntentCrossAttention(32, 2, attn_dropout=-0.5)
    with pytest.raises(TypeError, match="attn_dropout must be a real number"):
        CausalTransformerLayer(32, 2, attn_dropout=None)
