"""The compiled InfoNCE kernels (C++ on the CPU, CUDA on a GPU) against the PyTorch reference.

Accuracy rule (docs/design.md §3): the kernel's error against a float64 reference is at most twice
the error of the same-dtype PyTorch reference, plus a small per-dtype slack relative to the
magnitude of the result.  Float64 inputs run in float64 in both kernels, which is what
torch.autograd.gradcheck needs.

The C++ kernel must be built (``pip install --no-build-isolation -e .``): a test asking for
backend "cpu" gets it or fails with the reason, never a silent fallback.
"""

import os
import subprocess
import sys

import pytest
import torch
from conftest import requires_cuda

from igrsr.ops import BackendUnavailableError, available_backends, info_nce
from igrsr.ops.info_nce import dispatcher

# The compiled backend of each device has the device's name.
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Slack on top of 2× the reference's error, relative to the largest exact value: a few units
# in the last place of the output type (16-bit results are rounded once, at the end).
RELATIVE_SLACK = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float64: 1e-12}


# --------------------------------------------------------------------------- helpers


def views(batch, dim, dtype=torch.float32, device="cpu", scale=1.0):
    """Two correlated views, as a contrastive loss sees them."""
    anchor = torch.randn(batch, dim, device=device, dtype=torch.float64)
    z1 = anchor + 0.5 * torch.randn_like(anchor)
    z2 = anchor + 0.5 * torch.randn_like(anchor)
    return (scale * z1).to(dtype), (scale * z2).to(dtype)


def run_with_grads(z1, z2, grad_out, **kwargs):
    """(loss, grad_z1, grad_z2) of info_nce on fresh leaf copies of the views."""
    a, b = (t.detach().clone().requires_grad_() for t in (z1, z2))
    loss = info_nce(a, b, **kwargs)
    loss.backward(grad_out.to(loss.dtype).reshape(loss.shape))
    return loss.detach(), a.grad, b.grad


def assert_within_reference_error(z1, z2, backend, **kwargs):
    """Kernel vs float64 reference is within 2 × (same-dtype reference vs float64) + slack,
    for the loss and both gradients.  Returns the kernel's results."""
    batch = z1.shape[0]
    grad_out = torch.randn(batch if kwargs.get("reduction") == "none" else 1, dtype=torch.float64, device=z1.device)
    fast = run_with_grads(z1, z2, grad_out, backend=backend, **kwargs)
    reference = run_with_grads(z1, z2, grad_out, backend="reference", **kwargs)
    exact = run_with_grads(z1.double(), z2.double(), grad_out, backend="reference", **kwargs)
    slack = RELATIVE_SLACK[z1.dtype]
    for name, kernel_value, reference_value, exact_value in zip(("loss", "grad_z1", "grad_z2"), fast, reference, exact):
        assert kernel_value.dtype == reference_value.dtype and kernel_value.shape == reference_value.shape, name
        kernel_error = (kernel_value.double() - exact_value).abs().max().item()
        reference_error = (reference_value.double() - exact_value).abs().max().item()
        bound = 2 * reference_error + slack * exact_value.abs().max().item() + 1e-30
        assert kernel_error <= bound, (
            f"{name}: kernel error {kernel_error:.3g} > 2 × reference error {reference_error:.3g} + slack ({bound:.3g})"
        )
    return fast


def group_ids_for(kind, batch, device="cpu"):
    if kind is None:
        return None
    groups = torch.arange(batch, device=device) % 3  # every row shares its group with others
    return groups.to(torch.int32) if kind == "int32" else groups


def row_mask_for(kind, batch, device="cpu"):
    if kind is None:
        return None
    mask = torch.ones(batch, dtype=torch.bool, device=device)
    if kind == "some":
        mask[1::4] = False
    elif kind == "none_take_part":
        mask[:] = False
    return mask


# --------------------------------------------------------------------------- dispatch


def test_auto_picks_the_cpp_kernel_for_cpu_tensors():
    assert dispatcher.select("auto", torch.device("cpu")).name == "cpu"
    assert available_backends("info_nce", "cpu")[0] == "cpu"


def test_cuda_backend_says_why_it_cannot_take_cpu_tensors():
    with pytest.raises(BackendUnavailableError, match="'cuda' cannot run on cpu"):
        info_nce(*views(4, 8), backend="cuda")


def test_missing_extension_is_reported_and_the_reference_still_works(tmp_path):
    """In a fresh interpreter where igrsr._C cannot be imported (nor compiled at first use,
    which IGRSR_BUILD_EXTENSION=0 turns off): import igrsr works, auto and the reference run,
    and backend "cpu" names the reason."""
    script = (
        "import sys; sys.modules['igrsr._C'] = None\n"
        "import torch, igrsr\n"
        "from igrsr.ops import info_nce, available_backends, BackendUnavailableError\n"
        "z = torch.randn(5, 4)\n"
        "assert available_backends('info_nce') == ['reference'], available_backends('info_nce')\n"
        "assert torch.isfinite(info_nce(z, z + 1))\n"
        "try:\n"
        "    info_nce(z, z, backend='cpu')\n"
        "except BackendUnavailableError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "IGRSR_BUILD_EXTENSION": "0"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "igrsr._C is not available" in result.stdout and "IGRSR_BUILD_EXTENSION=0" in result.stdout


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("groups", [None, "int64", "int32"])
@pytest.mark.parametrize("mask", [None, "some"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_option_matches_the_reference(device, normalize, symmetric, groups, mask, reduction):
    batch, dim = 37, 19  # neither a multiple of a tile nor of a vector block
    z1, z2 = views(batch, dim, device=device, scale=1.0 if normalize else dim**-0.5)
    assert_within_reference_error(
        z1,
        z2,
        device,
        temperature=0.2 if normalize else 1.0,
        normalize=normalize,
        symmetric=symmetric,
        group_ids=group_ids_for(groups, batch, device),
        row_mask=row_mask_for(mask, batch, device),
        reduction=reduction,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_dtypes_within_twice_the_reference_error(device, dtype, symmetric):
    batch = 300 if device == "cuda" else 70
    z1, z2 = views(batch, 40, dtype, device)
    loss, grad_z1, grad_z2 = assert_within_reference_error(
        z1,
        z2,
        device,
        temperature=0.1,
        symmetric=symmetric,
        group_ids=group_ids_for("int64", batch, device),
        row_mask=row_mask_for("some", batch, device),
    )
    assert loss.dtype == grad_z1.dtype == grad_z2.dtype == dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "batch, dim",
    [(1, 1), (1, 64), (2, 3), (33, 17), (129, 16), (130, 512), (200, 65)],
    ids=lambda value: str(value),
)
def test_shapes_around_tiles_and_limits(device, batch, dim):
    z1, z2 = views(batch, dim, device=device)
    assert_within_reference_error(z1, z2, device, temperature=0.1, reduction="none")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("temperature", [0.01, 0.05, 1.0, 10.0])
@pytest.mark.parametrize("normalize", [True, False])
def test_temperatures_from_001_to_10_stay_finite(device, temperature, normalize):
    # Unnormalized rows of norm ~30 at τ = 0.01 give logits ~1e5: exp would overflow
    # without the online max.
    z1, z2 = views(50, 24, device=device, scale=1.0 if normalize else 6.0)
    loss, grad_z1, grad_z2 = assert_within_reference_error(z1, z2, device, temperature=temperature, normalize=normalize)
    assert all(torch.isfinite(t).all() for t in (loss, grad_z1, grad_z2))


@pytest.mark.parametrize("device", DEVICES)
def test_every_row_in_one_group_leaves_only_the_positive(device):
    z1, z2 = views(20, 8, device=device)
    group_ids = torch.full((20,), 7, device=device)
    loss, grad_z1, grad_z2 = assert_within_reference_error(z1, z2, device, group_ids=group_ids)
    assert loss.item() == 0.0
    assert not grad_z1.any() and not grad_z2.any()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_rows_masked_gives_zero_loss_and_zero_grads(device, reduction):
    # Not compared with the reference: its masked rows with an empty denominator come out
    # as (finfo.min - s_ii) · 0, which overflows to -inf · 0 = NaN.
    z1, z2 = views(9, 5, device=device)
    row_mask = row_mask_for("none_take_part", 9, device)
    grad_out = torch.ones(9 if reduction == "none" else 1, dtype=torch.float64, device=device)
    loss, grad_z1, grad_z2 = run_with_grads(z1, z2, grad_out, row_mask=row_mask, reduction=reduction, backend=device)
    assert loss.shape == ((9,) if reduction == "none" else ())
    assert not loss.any() and not grad_z1.any() and not grad_z2.any()


@pytest.mark.parametrize("device", DEVICES)
def test_masked_rows_get_zero_loss_and_zero_grads(device):
    z1, z2 = views(16, 6, device=device)
    row_mask = row_mask_for("some", 16, device)
    loss, grad_z1, grad_z2 = assert_within_reference_error(
        z1,
        z2,
        device,
        row_mask=row_mask,
        group_ids=group_ids_for("int64", 16, device),
        reduction="none",
    )
    assert not loss[~row_mask].any()
    assert not grad_z1[~row_mask].any() and not grad_z2[~row_mask].any()


@pytest.mark.parametrize("device", DEVICES)
def test_zero_row_is_normalized_like_the_reference(device):
    z1, z2 = views(6, 4, device=device)
    z1[2] = 0.0
    assert_within_reference_error(z1, z2, device, reduction="none")


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_views(device):
    z1, z2 = (t.t().contiguous().t() for t in views(30, 12, device=device))
    assert not z1.is_contiguous()
    assert_within_reference_error(z1, z2, device)


# --------------------------------------------------------------------------- float64, gradcheck


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("rule", ["plain", "groups_and_mask"])
def test_gradcheck_float64(device, normalize, symmetric, rule):
    z1, z2 = (t.requires_grad_() for t in views(11, 5, torch.float64, device))
    group_ids = group_ids_for("int64", 11, device) if rule != "plain" else None
    row_mask = row_mask_for("some", 11, device) if rule != "plain" else None

    def loss(a, b):
        return info_nce(
            a,
            b,
            0.3,
            normalize=normalize,
            symmetric=symmetric,
            group_ids=group_ids,
            row_mask=row_mask,
            reduction="none",
            backend=device,
        )

    assert torch.autograd.gradcheck(loss, (z1, z2))


@pytest.mark.parametrize("device", DEVICES)
def test_float64_matches_the_reference_to_rounding(device):
    z1, z2 = views(50, 33, torch.float64, device)
    exact = run_with_grads(z1, z2, torch.ones(1, dtype=torch.float64, device=device), backend="reference")
    fast = run_with_grads(z1, z2, torch.ones(1, dtype=torch.float64, device=device), backend=device)
    for kernel_value, exact_value in zip(fast, exact):
        torch.testing.assert_close(kernel_value, exact_value, rtol=1e-11, atol=1e-13)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("device", DEVICES)
def test_bitwise_reproducible(device):
    z1, z2 = views(150, 20, device=device)
    grad_out = torch.ones(1, dtype=torch.float64, device=device)
    first = run_with_grads(z1, z2, grad_out, backend=device, group_ids=group_ids_for("int64", 150, device))
    second = run_with_grads(z1, z2, grad_out, backend=device, group_ids=group_ids_for("int64", 150, device))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_cpu_results_do_not_depend_on_the_thread_count():
    z1, z2 = views(150, 20)
    grad_out = torch.ones(1, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run_with_grads(z1, z2, grad_out, backend="cpu")
        torch.set_num_threads(max(2, threads))
        multi = run_with_grads(z1, z2, grad_out, backend="cpu")
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(single, multi):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- bad inputs


def bad_input_cases():
    z = torch.randn(6, 4)
    return [
        ("shape", dict(z1=z, z2=torch.randn(5, 4)), ValueError, "z2 must have shape"),
        ("rank", dict(z1=torch.randn(6), z2=torch.randn(6)), ValueError, "z1 must have 2 dimensions"),
        ("dtype mismatch", dict(z1=z, z2=z.double()), TypeError, "z2 has dtype"),
        ("integer views", dict(z1=z.long(), z2=z.long()), TypeError, "z1 must have dtype"),
        ("zero temperature", dict(z1=z, z2=z, temperature=0.0), ValueError, "temperature"),
        ("negative temperature", dict(z1=z, z2=z, temperature=-1.0), ValueError, "temperature"),
        ("NaN temperature", dict(z1=z, z2=z, temperature=float("nan")), ValueError, "temperature"),
        (
            "group ids length",
            dict(z1=z, z2=z, group_ids=torch.zeros(5, dtype=torch.long)),
            ValueError,
            "group_ids",
        ),
        ("group ids dtype", dict(z1=z, z2=z, group_ids=torch.zeros(6)), TypeError, "group_ids"),
        ("row mask dtype", dict(z1=z, z2=z, row_mask=torch.ones(6)), TypeError, "row_mask"),
        ("too many features", dict(z1=torch.randn(3, 513), z2=torch.randn(3, 513)), ValueError, "512"),
        ("reduction", dict(z1=z, z2=z, reduction="max"), ValueError, "reduction"),
    ]


@pytest.mark.parametrize("case", bad_input_cases(), ids=lambda case: case[0])
def test_bad_inputs_raise_clear_errors(case):
    _, kwargs, error, message = case
    with pytest.raises(error, match=message):
        info_nce(**kwargs, backend="cpu")


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((torch.randn(4, 3), torch.randn(4, 2), 0.1), ValueError, "z2 must have the shape of z1"),
        ((torch.randn(4, 3), torch.randn(4, 3).double(), 0.1), TypeError, "z2 has dtype"),
        (
            (torch.randn(4, 3), torch.randn(4, 3), float("nan")),
            ValueError,
            "temperature must be a finite number",
        ),
        ((torch.randn(4, 3), torch.randn(4, 3), 0.0), ValueError, "temperature must be a finite number"),
        ((torch.randn(4, 3).int(), torch.randn(4, 3).int(), 0.1), TypeError, "z1 must be float16"),
        ((torch.randn(0, 3), torch.randn(0, 3), 0.1), ValueError, "at least one row"),
    ],
)
def test_the_op_checks_its_own_arguments(args, error, message):
    """Called directly, without the Python API's validation in front."""
    with pytest.raises(error, match=message):
        torch.ops.igrsr.info_nce_forward(*args, True, True, None, None)


def test_the_op_checks_group_ids_length_and_statistics_shape():
    z1, z2 = views(5, 3)
    with pytest.raises(ValueError, match=r"group_ids must have shape \(5,\)"):
        torch.ops.igrsr.info_nce_forward(z1, z2, 0.1, True, True, torch.zeros(4, dtype=torch.long), None)
    loss_rows, lse_rows, lse_cols = torch.ops.igrsr.info_nce_forward(z1, z2, 0.1, True, False, None, None)
    assert lse_cols.shape == (0,)
    with pytest.raises(ValueError, match=r"lse_cols must have shape \(5,\)"):
        torch.ops.igrsr.info_nce_backward(loss_rows, z1, z2, lse_rows, lse_cols, 0.1, True, True, None, None)


# --------------------------------------------------------------------------- torch.library


def opcheck_samples(device):
    z1, z2 = views(13, 7, device=device)
    groups = group_ids_for("int64", 13, device)
    mask = row_mask_for("some", 13, device)
    return [
        (z1, z2, 0.1, True, True, None, None),
        (z1, z2, 0.5, False, False, groups, mask),
        (z1.double(), z2.double(), 0.2, True, True, groups.int(), None),
        (z1.half(), z2.half(), 0.2, True, False, None, mask),
        (z1.t().contiguous().t(), z2, 0.3, True, True, None, None),  # strided z1
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sample", range(5))
def test_opcheck_forward(device, sample):
    args = opcheck_samples(device)[sample]
    z1, z2, *rest = args
    torch.library.opcheck(torch.ops.igrsr.info_nce_forward.default, (z1.requires_grad_(), z2.requires_grad_(), *rest))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_opcheck_backward(device, symmetric):
    z1, z2 = views(13, 7, device=device)
    loss_rows, lse_rows, lse_cols = torch.ops.igrsr.info_nce_forward(z1, z2, 0.1, True, symmetric, None, None)
    grad = torch.randn_like(loss_rows)
    torch.library.opcheck(
        torch.ops.igrsr.info_nce_backward.default,
        (grad, z1, z2, lse_rows, lse_cols, 0.1, True, symmetric, None, None),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_works_under_torch_compile(device):
    z1, z2 = (t.requires_grad_() for t in views(24, 8, device=device))
    group_ids = group_ids_for("int64", 24, device)

    def loss(a, b):
        return info_nce(a, b, 0.1, group_ids=group_ids, backend=device)

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    expected = torch.autograd.grad(loss(z1, z2), (z1, z2))
    actual = torch.autograd.grad(compiled(z1, z2), (z1, z2))
    for a, b in zip(actual, expected):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- CUDA memory


@requires_cuda
def test_cuda_never_allocates_the_similarity_matrix():
    batch, dim = 8192, 64
    z1, z2 = (t.requires_grad_() for t in views(batch, dim, device="cuda"))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    info_nce(z1, z2, 0.1, backend="cuda").backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - start
    similarity_bytes = batch * batch * 4
    assert peak < similarity_bytes / 16, f"peak {peak} bytes; one B×B float32 matrix is {similarity_bytes}"
