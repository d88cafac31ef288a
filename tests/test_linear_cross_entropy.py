"""linear_cross_entropy: the chunked and Triton backends against a plain float64 cross-entropy.

Accuracy rule (docs/design.md §3): a backend's error against the float64 result is at most
twice the error of the same-dtype reference backend (the materialized ``F.cross_entropy``),
plus a few units in the last place relative to the result's magnitude.  Triton runs on its
CPU interpreter without a GPU (tests/conftest.py sets TRITON_INTERPRET=1), so shapes are small.
"""

import os

import pytest
import torch
from conftest import requires_cuda

from igrsr.ops import BackendUnavailableError, available_backends, linear_cross_entropy
from igrsr.ops.linear_cross_entropy import dispatcher
from igrsr.ops.triton_support import TRITON_INSTALLED

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
requires_triton = pytest.mark.skipif(not TRITON_INSTALLED, reason="Triton is not installed")
requires_interpreter = pytest.mark.skipif(not INTERPRETING, reason="Triton on the CPU needs TRITON_INTERPRET=1")

# (backend, device)
FAST_PATHS = [
    pytest.param(("chunked", "cpu"), id="chunked-cpu"),
    pytest.param(("chunked", "cuda"), id="chunked-cuda", marks=requires_cuda),
    pytest.param(("triton", "cpu"), id="triton-interpreter", marks=[requires_triton, requires_interpreter]),
    pytest.param(("triton", "cuda"), id="triton-cuda", marks=[requires_triton, requires_cuda]),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
RELATIVE_SLACK = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


# --------------------------------------------------------------------------- helpers


def plain_cross_entropy(hidden, weight, targets, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The test's own definition, in float64: -(1-ε) log p_target - ε mean_j log p_j per kept row."""
    log_probs = torch.log_softmax(hidden.double() @ weight.double().T, dim=1)
    kept = targets != ignore_index
    target_log_probs = log_probs.gather(1, targets.clamp(min=0)[:, None]).squeeze(1)
    losses = -(1 - label_smoothing) * target_log_probs - label_smoothing * log_probs.mean(dim=1)
    losses = torch.where(kept, losses, torch.zeros_like(losses))
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / kept.sum().clamp(min=1)


def make_inputs(rows, classes, dim, dtype=torch.float32, device="cpu", scale=1.0):
    hidden = (scale * torch.randn(rows, dim, dtype=torch.float64)).to(device, dtype)
    weight = (torch.randn(classes, dim, dtype=torch.float64) / dim**0.5).to(device, dtype)
    targets = torch.randint(0, classes, (rows,), device=device)
    return hidden, weight, targets


def run_with_grads(op, hidden, weight, targets, grad_out, **kwargs):
    """(loss, grad_hidden, grad_weight) of ``op`` on fresh leaf copies."""
    h, w = (t.detach().clone().requires_grad_() for t in (hidden, weight))
    loss = op(h, w, targets, **kwargs)
    loss.backward(grad_out.to(loss.dtype).reshape(loss.shape))
    return loss.detach(), h.grad, w.grad


def assert_within_reference_error(hidden, weight, targets, backend, device, **kwargs):
    """The backend vs float64 is within 2 × (same-dtype reference vs float64) + slack, for the
    loss and both gradients; the float64 result is the test's own and must match the
    reference backend run in float64.  Returns the backend's results."""
    hidden, weight, targets = hidden.to(device), weight.to(device), targets.to(device)
    rows = 1 if kwargs.get("reduction", "mean") != "none" else hidden.shape[0]
    grad_out = torch.randn(rows, dtype=torch.float64, device=device)
    fast = run_with_grads(linear_cross_entropy, hidden, weight, targets, grad_out, backend=backend, **kwargs)
    reference = run_with_grads(linear_cross_entropy, hidden, weight, targets, grad_out, backend="reference", **kwargs)
    options = {k: v for k, v in kwargs.items() if k != "chunk_size"}
    exact = run_with_grads(plain_cross_entropy, hidden.double(), weight.double(), targets, grad_out, **options)
    reference64 = run_with_grads(
        linear_cross_entropy, hidden.double(), weight.double(), targets, grad_out, backend="reference", **kwargs
    )
    slack = RELATIVE_SLACK[hidden.dtype]
    for name, fast_value, reference_value, exact_value, reference64_value in zip(
        ("loss", "grad_hidden", "grad_weight"), fast, reference, exact, reference64
    ):
        torch.testing.assert_close(reference64_value, exact_value, rtol=1e-9, atol=1e-12, msg=name)
        assert fast_value.dtype == reference_value.dtype and fast_value.shape == reference_value.shape, name
        fast_error = (fast_value.double() - exact_value).abs().max().item()
        reference_error = (reference_value.double() - exact_value).abs().max().item()
        bound = 2 * reference_error + slack * exact_value.abs().max().item() + 1e-30
        assert fast_error <= bound, (
            f"{name}: {backend} error {fast_error:.3g} > "
            f"2 × reference error {reference_error:.3g} + slack ({bound:.3g})"
        )
    return fast


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dtypes_and_reductions_within_twice_the_reference_error(path, dtype, reduction):
    backend, device = path
    hidden, weight, targets = make_inputs(33, 70, 16, dtype)  # 70 classes: 4 chunks of 16, the last one short
    targets[::4] = -100
    loss, grad_hidden, grad_weight = assert_within_reference_error(
        hidden, weight, targets, backend, device, reduction=reduction, chunk_size=16
    )
    assert loss.dtype == grad_hidden.dtype == grad_weight.dtype == dtype
    assert not grad_hidden[::4].any(), "ignored rows get no gradient"


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize(
    "rows, classes, dim, chunk_size",
    [(1, 1, 1, None), (1, 37, 16, 16), (5, 16, 8, 16), (17, 33, 32, 8), (9, 130, 64, None), (64, 45, 16, 1)],
    ids=str,
)
def test_shapes_around_chunks(path, rows, classes, dim, chunk_size):
    backend, device = path
    hidden, weight, targets = make_inputs(rows, classes, dim)
    assert_within_reference_error(hidden, weight, targets, backend, device, reduction="none", chunk_size=chunk_size)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_chunked_row_blocks_not_dividing_the_rows(monkeypatch, dtype, label_smoothing):
    """Tiles of 5 rows × 16 classes: 33 rows make 7 blocks, the last of 3 rows, and each
    chunk's gradient accumulates over the blocks."""
    from igrsr.ops.linear_cross_entropy import chunked

    monkeypatch.setattr(chunked, "TILE_ELEMENTS", 5 * 16)
    hidden, weight, targets = make_inputs(33, 70, 16, dtype)
    targets[::3] = -100
    assert_within_reference_error(
        hidden, weight, targets, "chunked", "cpu", reduction="none", label_smoothing=label_smoothing, chunk_size=16
    )


@pytest.mark.parametrize("path", FAST_PATHS)
def test_targets_in_the_first_and_the_last_chunk(path):
    backend, device = path
    hidden, weight, targets = make_inputs(12, 50, 16)
    targets[:6] = torch.tensor([0, 1, 15, 0, 2, 3])
    targets[6:] = torch.tensor([49, 48, 49, 32, 47, 49])  # the last chunk has classes 48 and 49 only
    assert_within_reference_error(hidden, weight, targets, backend, device, chunk_size=16)


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("label_smoothing", [0.1, 1.0])
def test_label_smoothing(path, label_smoothing):
    backend, device = path
    hidden, weight, targets = make_inputs(20, 41, 16)
    targets[3] = -100
    assert_within_reference_error(
        hidden, weight, targets, backend, device, label_smoothing=label_smoothing, chunk_size=16
    )


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_very_large_logits_stay_finite(path, dtype):
    # Logits of ~1e3: exp overflows without the running max.
    backend, device = path
    hidden, weight, targets = make_inputs(16, 40, 16, dtype, scale=1e3)
    loss, grad_hidden, grad_weight = assert_within_reference_error(
        hidden, weight, targets, backend, device, chunk_size=16
    )
    assert all(torch.isfinite(t).all() for t in (loss, grad_hidden, grad_weight))


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_row_ignored_gives_zero_not_nan(path, reduction):
    backend, device = path
    hidden, weight, _ = make_inputs(7, 20, 8, device=device)
    targets = torch.full((7,), -1, device=device)
    grad_out = torch.ones(7 if reduction == "none" else 1, dtype=torch.float64, device=device)
    loss, grad_hidden, grad_weight = run_with_grads(
        linear_cross_entropy, hidden, weight, targets, grad_out, ignore_index=-1, reduction=reduction, backend=backend
    )
    assert loss.shape == ((7,) if reduction == "none" else ())
    assert not loss.any() and not grad_hidden.any() and not grad_weight.any()


# --------------------------------------------------------------------------- torch.library and compile


def custom_ops(backend):
    """(forward op, backward op, the options after ignore_index and label_smoothing)."""
    if backend == "chunked":
        from igrsr.ops.linear_cross_entropy import chunked

        return chunked.linear_cross_entropy_chunked, chunked.linear_cross_entropy_chunked_backward, (8,)
    from igrsr.ops.linear_cross_entropy import triton

    return triton.linear_cross_entropy_triton, triton.linear_cross_entropy_triton_backward, ()


@pytest.mark.parametrize("path", FAST_PATHS)
def test_opcheck_on_the_custom_ops(path):
    backend, device = path
    forward, backward, options = custom_ops(backend)
    # float64 where the backend takes it (gradcheck-grade), float32 on the Triton kernels.
    dtype = torch.float64 if backend == "chunked" else torch.float32
    hidden, weight, targets = make_inputs(9, 21, 16, dtype, device)
    targets[2] = -100
    arguments = (hidden.requires_grad_(), weight.requires_grad_(), targets, -100, 0.1, *options)
    torch.library.opcheck(forward, arguments)
    _, row_lse = forward(*arguments)
    grad_rows = torch.randn(9, dtype=row_lse.dtype, device=device)
    torch.library.opcheck(
        backward, (grad_rows, hidden.detach(), weight.detach(), targets, row_lse.detach(), -100, 0.1, *options)
    )


def test_chunked_gradients_pass_gradcheck():
    hidden, weight, targets = make_inputs(6, 11, 4, torch.float64)
    targets[1] = -100
    hidden.requires_grad_()
    weight.requires_grad_()
    op = lambda h, w: linear_cross_entropy(
        h, w, targets, reduction="none", label_smoothing=0.2, chunk_size=4, backend="chunked"
    )
    assert torch.autograd.gradcheck(op, (hidden, weight))


@pytest.mark.parametrize("path", FAST_PATHS)
def test_compiles_without_graph_breaks(path):
    backend, device = path
    hidden, weight, targets = make_inputs(10, 30, 16, device=device)

    def loss_and_grads(h, w, t):
        h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
        loss = linear_cross_entropy(h, w, t, label_smoothing=0.1, chunk_size=16, backend=backend)
        loss.backward()
        return loss.detach(), h.grad, w.grad

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(
        lambda h, w, t: linear_cross_entropy(h, w, t, label_smoothing=0.1, chunk_size=16, backend=backend)
    )(hidden, weight, targets)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(
        lambda h, w, t: linear_cross_entropy(h, w, t, label_smoothing=0.1, chunk_size=16, backend=backend),
        fullgraph=True,
        backend="aot_eager",
    )
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = compiled(h, w, targets)
    loss.backward()
    for compiled_value, eager_value in zip((loss.detach(), h.grad, w.grad), loss_and_grads(hidden, weight, targets)):
        torch.testing.assert_close(compiled_value, eager_value)


# --------------------------------------------------------------------------- dispatch and validation


def test_auto_picks_chunked_on_the_cpu_for_large_logits_and_the_reference_for_small():
    from igrsr.ops.linear_cross_entropy.chunked import SMALL_LOGITS

    def chosen(rows, classes):
        hidden, weight = torch.empty(rows, 4), torch.empty(classes, 4)
        targets = torch.zeros(rows, dtype=torch.long)
        return dispatcher.select("auto", torch.device("cpu"), (hidden, weight, targets, -100, 0.0, None)).name

    assert chosen(SMALL_LOGITS // 1000 + 1, 1000) == "chunked"
    assert chosen(SMALL_LOGITS // 1000, 1000) == "reference"
    assert chosen(3, 5) == "reference"
    backends = available_backends("linear_cross_entropy", "cpu")
    assert backends.index("chunked") < backends.index("reference")


@pytest.mark.skipif(INTERPRETING, reason="under the interpreter Triton takes CPU tensors")
def test_triton_on_cpu_tensors_is_an_error_not_a_fallback():
    with pytest.raises(BackendUnavailableError, match="'triton' cannot run on cpu"):
        linear_cross_entropy(*make_inputs(3, 5, 4), backend="triton")


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda h, w, t: (h[0], w, t), ValueError, "hidden must have 2 dimensions"),
        (lambda h, w, t: (h, w[:, :3], t), ValueError, "weight must have shape"),
        (lambda h, w, t: (h, w.double(), t), TypeError, "weight has dtype"),
        (lambda h, w, t: (h, w, t.int()), TypeError, "targets must have dtype"),
        (lambda h, w, t: (h, w, t[:2]), ValueError, "targets must have shape"),
        (lambda h, w, t: (h, w, t + 5), ValueError, r"targets must be in \[0, 5\)"),
        (lambda h, w, t: (h, w, t - 10), ValueError, r"targets must be in \[0, 5\)"),
        (lambda h, w, t: (h.long(), w, t), TypeError, "hidden must have dtype"),
    ],
    ids=[
        "hidden-1d",
        "weight-dim",
        "weight-dtype",
        "targets-dtype",
        "targets-shape",
        "target-high",
        "target-low",
        "hidden-int",
    ],
)
def test_bad_inputs_name_the_argument(change, error, match):
    with pytest.raises(error, match=match):
        linear_cross_entropy(*change(*make_inputs(3, 5, 4)))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"chunk_size": 0}, "chunk_size must be None or an int >= 1"),
        ({"reduction": "avg"}, "reduction must be one of"),
        ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\]"),
        ({"ignore_index": 1.0}, "ignore_index must be an int"),
        ({"backend": "fast"}, "unknown backend 'fast'"),
    ],
)
def test_bad_options_name_the_option(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        linear_cross_entropy(*make_inputs(3, 5, 4), **options)
