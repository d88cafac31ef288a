"""The layers' conventions (docs/conventions.md): mask meaning, padded rows, weights from other
layouts, block options, backend names; and info_nce's d, tensor temperature and NT-Xent form."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from igrsr.nn import CausalSelfAttention, CausalTransformerLayer, DeliberativeReasonerLayer, InfoNCELoss
from igrsr.ops import available_backends, info_nce, nt_xent
from igrsr.ops.info_nce import dispatcher as info_nce_dispatcher

D_MODEL, HEADS, LENGTH = 16, 2, 7
COMPILED = [name for name in ("cpu",) if name in available_backends("info_nce")]


def left_padded(batch=3, length=LENGTH):
    """True = real token; row 0 full, the others left-padded (row 2 down to one token)."""
    real = torch.ones(batch, length, dtype=torch.bool)
    real[1, :3] = False
    real[2, :-1] = False
    return real


def causal_torch_mask(length):
    return torch.triu(torch.ones(length, length, dtype=torch.bool), 1)


# --------------------------------------------------------------------------- masks


def test_key_padding_mask_takes_torchs_meaning_and_valid_mask_the_opposite():
    torch.manual_seed(0)
    layer = CausalSelfAttention(D_MODEL, HEADS).eval()
    x, real = torch.randn(3, LENGTH, D_MODEL), left_padded()
    by_valid = layer(x, real)
    torch.testing.assert_close(layer(x, key_padding_mask=~real), by_valid, rtol=0, atol=0)
    block = CausalTransformerLayer(D_MODEL, HEADS).eval()
    torch.testing.assert_close(block(x, key_padding_mask=~real), block(x, valid_mask=real), rtol=0, atol=0)


def test_both_masks_or_a_float_padding_mask_are_errors():
    layer = CausalSelfAttention(D_MODEL, HEADS)
    x, real = torch.randn(3, LENGTH, D_MODEL), left_padded()
    with pytest.raises(ValueError, match="not both"):
        layer(x, real, key_padding_mask=~real)
    with pytest.raises(TypeError, match="key_padding_mask must be a bool tensor"):
        layer(x, key_padding_mask=(~real).float())


def test_padded_query_rows_are_zeros_even_with_an_output_bias():
    torch.manual_seed(0)
    layer = CausalSelfAttention(D_MODEL, HEADS).eval()
    nn.init.normal_(layer.out.bias)
    real = left_padded()
    y = layer(torch.randn(3, LENGTH, D_MODEL), real)
    assert torch.equal(y[~real], torch.zeros_like(y[~real]))
    assert (y[real].abs().sum(-1) > 0).all()


def test_padding_never_changes_real_rows():
    torch.manual_seed(0)
    layer = CausalSelfAttention(D_MODEL, HEADS).eval()
    x, real = torch.randn(3, LENGTH, D_MODEL), left_padded()
    noisy = torch.where(real.unsqueeze(-1), x, torch.randn_like(x) * 100)
    torch.testing.assert_close(layer(noisy, real)[real], layer(x, real)[real])


# --------------------------------------------------------------------------- weights from other layouts


@pytest.mark.parametrize("bias", [True, False])
def test_multihead_attention_weights_load_into_the_fused_projection(bias):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(D_MODEL, HEADS, bias=bias, batch_first=True).eval()
    ours = CausalSelfAttention(D_MODEL, HEADS).eval()
    ours.load_state_dict(theirs.state_dict())
    x, real = torch.randn(3, LENGTH, D_MODEL), left_padded(3)
    real[:, -1] = True  # torch's attention gives NaN on a row that sees no key; ours gives zeros
    expected, _ = theirs(x, x, x, key_padding_mask=~real, attn_mask=causal_torch_mask(LENGTH), need_weights=False)
    got = ours(x, key_padding_mask=~real)
    # Real rows whose causal window holds a real key (left padding: every real row).
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-6)


def test_an_unknown_layout_still_fails_the_strict_load():
    ours = CausalSelfAttention(D_MODEL, HEADS)
    with pytest.raises(RuntimeError, match="qkv.weight"):
        ours.load_state_dict({"q.weight": torch.zeros(D_MODEL, D_MODEL)})


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_layer_options_match_torchs_encoder_layer(norm_first, activation):
    """Post-norm and pre-norm, a feed-forward width, activation and eps of one's choosing."""
    torch.manual_seed(0)
    ffn_dim, eps = 24, 1e-12
    theirs = nn.TransformerEncoderLayer(
        D_MODEL, HEADS, ffn_dim, dropout=0.0, activation=activation, layer_norm_eps=eps,
        batch_first=True, norm_first=norm_first,
    ).eval()  # fmt: skip
    ours = CausalTransformerLayer(
        D_MODEL, HEADS, norm="pre" if norm_first else "post", ffn_dim=ffn_dim, activation=activation, eps=eps
    ).eval()
    names = {"self_attn.": "attention.", "linear1.": "ffn.net.0.", "linear2.": "ffn.net.3.",
             "norm1.": "attention_norm.", "norm2.": "ffn_norm."}  # fmt: skip
    state = {}
    for key, value in theirs.state_dict().items():
        old = next(name for name in names if key.startswith(name))
        state[names[old] + key[len(old) :]] = value
    ours.load_state_dict(state)
    x, real = torch.randn(3, LENGTH, D_MODEL), left_padded()
    expected = theirs(x, src_mask=causal_torch_mask(LENGTH), src_key_padding_mask=~real)
    got = ours(x, key_padding_mask=~real)
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)
    assert torch.equal(got[~real], torch.zeros_like(got[~real]))


def test_transformer_layer_defaults_are_the_pre_norm_sasrec_block():
    layer = CausalTransformerLayer(D_MODEL, HEADS)
    assert layer.pre_norm and layer.attention_norm.eps == 1e-5 and layer.ffn_norm.eps == 1e-5
    assert layer.ffn.net[0].out_features == 4 * D_MODEL and isinstance(layer.ffn.net[1], nn.GELU)


@pytest.mark.parametrize(
    "options, message",
    [(dict(norm="middle"), "norm must be one of"), (dict(activation="tanh"), "activation must be one of"),
     (dict(ffn_dim=0), "hidden_dim must be at least 1")],
)  # fmt: skip
def test_transformer_layer_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        CausalTransformerLayer(D_MODEL, HEADS, **options)


# --------------------------------------------------------------------------- backend names


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: CausalSelfAttention(D_MODEL, HEADS, backend="cpu"), "causal_attention: unknown backend 'cpu'"),
        (lambda: CausalTransformerLayer(D_MODEL, HEADS, backend="cuda"), "causal_attention: unknown backend 'cuda'"),
        (lambda: DeliberativeReasonerLayer(D_MODEL, HEADS, backend="cpu"), "unknown backend 'cpu'"),
        (lambda: InfoNCELoss(backend="triton"), "info_nce: unknown backend 'triton'"),
        (lambda: InfoNCELoss(backend="tritn"), "info_nce: unknown backend 'tritn'"),
    ],
)
def test_a_layer_refuses_a_backend_its_op_lacks_as_the_op_does(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_the_op_gives_the_same_error():
    with pytest.raises(ValueError, match="info_nce: unknown backend 'triton'"):
        info_nce(torch.randn(2, 3), torch.randn(2, 3), backend="triton")


# --------------------------------------------------------------------------- info_nce


def plain_info_nce(z1, z2, temperature):
    """Symmetric cosine InfoNCE written the textbook way, in float64."""
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
    labels = torch.arange(z1.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def test_the_reference_takes_wide_rows_and_auto_picks_a_backend_that_can():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 768, dtype=torch.float64), torch.randn(5, 768, dtype=torch.float64)
    torch.testing.assert_close(info_nce(z1, z2, 0.2), plain_info_nce(z1, z2, 0.2))
    inputs = (z1, z2, 0.2, True, True, None, None, "mean")
    assert info_nce_dispatcher.select("auto", z1.device, inputs).name == "reference"


@pytest.mark.parametrize("backend", COMPILED)
def test_a_compiled_kernel_says_which_d_it_covers(backend):
    z = torch.randn(3, 513)
    with pytest.raises(ValueError, match="d up to 512"):
        info_nce(z, z, backend=backend)
    assert info_nce_dispatcher.select("auto", z.device, (z[:, :512], z[:, :512], 0.1)).name == backend


def test_a_learnable_temperature_gets_its_gradient():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    temperature = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
    loss_module = InfoNCELoss(temperature)
    assert any(p is temperature for p in loss_module.parameters())
    (grad,) = torch.autograd.grad(loss_module(z1, z2), temperature)
    expected_temperature = temperature.detach().clone().requires_grad_()
    (expected,) = torch.autograd.grad(plain_info_nce(z1, z2, expected_temperature), expected_temperature)
    torch.testing.assert_close(grad, expected)
    assert grad.abs() > 0


@pytest.mark.parametrize("backend", COMPILED)
def test_a_kernel_refuses_a_temperature_that_needs_a_gradient_and_takes_one_that_does_not(backend):
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature tensor that requires grad"):
        info_nce(z1, z2, torch.tensor(0.5, requires_grad=True), backend=backend)
    torch.testing.assert_close(info_nce(z1, z2, torch.tensor(0.5), backend=backend), info_nce(z1, z2, 0.5))


@pytest.mark.parametrize(
    "temperature, error, message",
    [(torch.tensor([0.1, 0.2]), TypeError, "one-element float tensor"), (torch.tensor(1), TypeError, "float tensor"),
     (torch.tensor(-0.1), ValueError, "temperature must be a finite number > 0")],
)  # fmt: skip
def test_bad_temperature_tensors_are_clear_errors(temperature, error, message):
    with pytest.raises(error, match=message):
        info_nce(torch.randn(2, 3), torch.randn(2, 3), temperature)


def plain_nt_xent(z_i, z_j, temperature, cosine):
    """NT-Xent as DuoRec / CL4SRec (and RecBole's FEARec) write it: the 2B × 2B similarity, the
    positive at ±B off the diagonal, the diagonal and the positive removed from the negatives."""
    batch = z_i.shape[0]
    z = torch.cat([z_i, z_j])
    if cosine:
        sim = F.cosine_similarity(z.unsqueeze(1), z.unsqueeze(0), dim=2) / temperature
    else:
        sim = z @ z.T / temperature
    positives = torch.cat([torch.diag(sim, batch), torch.diag(sim, -batch)]).reshape(2 * batch, 1)
    negatives_mask = ~torch.eye(2 * batch, dtype=torch.bool)
    for i in range(batch):
        negatives_mask[i, batch + i] = negatives_mask[batch + i, i] = False
    negatives = sim[negatives_mask].reshape(2 * batch, -1)
    logits = torch.cat([positives, negatives], dim=1)
    return F.cross_entropy(logits, torch.zeros(2 * batch, dtype=torch.long))


def loss_and_grads(loss_fn, z_i, z_j):
    z_i, z_j = z_i.detach().clone().requires_grad_(), z_j.detach().clone().requires_grad_()
    loss = loss_fn(z_i, z_j)
    return (loss, *torch.autograd.grad(loss, (z_i, z_j)))


@pytest.mark.parametrize("backend", ["reference", *COMPILED])
@pytest.mark.parametrize("cosine", [False, True])
@pytest.mark.parametrize("batch", [1, 5])
def test_nt_xent_is_info_nce_on_the_views_stacked_both_ways(backend, cosine, batch):
    torch.manual_seed(batch)
    z_i, z_j = torch.randn(batch, 8, dtype=torch.float64), torch.randn(batch, 8, dtype=torch.float64)
    expected = loss_and_grads(lambda a, b: plain_nt_xent(a, b, 0.7, cosine), z_i, z_j)
    group_ids = torch.arange(batch).repeat(2)
    forms = [
        lambda a, b: nt_xent(a, b, 0.7, normalize=cosine, backend=backend),
        lambda a, b: InfoNCELoss(0.7, normalize=cosine, backend=backend).nt_xent(a, b),
        lambda a, b: info_nce(
            torch.cat([a, b]),
            torch.cat([b, a]),
            0.7,
            normalize=cosine,
            symmetric=False,
            group_ids=group_ids,
            backend=backend,
        ),  # fmt: skip
    ]
    for form in forms:
        for got, want in zip(loss_and_grads(form, z_i, z_j), expected):
            torch.testing.assert_close(got, want)


# --------------------------------------------------------------------------- Triton is optional


def test_the_layers_and_ops_run_where_triton_cannot_be_imported():
    script = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, igrsr, igrsr.nn as n, igrsr.ops as o\n"
        "from igrsr.ops.triton_support import TRITON_INSTALLED; assert not TRITON_INSTALLED\n"
        "x = torch.randn(2, 5, 16); n.CausalTransformerLayer(16, 2)(x, torch.ones(2, 5, dtype=torch.bool))\n"
        "n.DeliberativeReasonerLayer(16, 2)(x, torch.randn(2, 3, 16))\n"
        "o.info_nce(x[:, 0], x[:, 1])\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
