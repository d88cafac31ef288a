"""SASRec and IGR-SR: no leakage, padding invariance, frozen distiller, masked intents."""

import numpy as np
import pytest
import torch

from igrsr import IGRSR, SASRec
from igrsr.data import PrefixExamples
from igrsr.models.igrsr import sample_intent_masks

NUM_ITEMS = 40
MAX_LEN = 12


def make_sasrec() -> SASRec:
    return SASRec(NUM_ITEMS, max_len=MAX_LEN, d_model=16, num_layers=2, num_heads=2, dropout=0.0)


def make_igrsr(**options) -> IGRSR:
    model = IGRSR(make_sasrec(), num_prefix=3, num_intents=4, num_layers=2, num_heads=2, dropout=0.0, **options)
    # Give the cross-attention a say (it starts at zero) so the intents influence outputs.
    for layer in model.reasoner.layers:
        torch.nn.init.normal_(layer.cross_attention.out.weight, std=0.3)
    return model


def histories(batch: int = 5, pad: int = 4) -> torch.Tensor:
    h = torch.randint(1, NUM_ITEMS + 1, (batch, MAX_LEN))
    h[1, :pad] = 0
    h[2, : MAX_LEN - 1] = 0  # a single real item
    return h


@pytest.fixture(params=["sasrec", "igrsr"])
def model(request):
    return (make_sasrec() if request.param == "sasrec" else make_igrsr()).eval()


def test_no_leakage_target_and_future_do_not_move_the_prediction(model):
    """Change a training example's target and every later item: its prediction must not move."""
    sequence = np.array([3, 7, 1, 9, 4, 4, 12, 30, 2], dtype=np.int64)
    cut = 5  # the example whose target is sequence[cut]
    changed = sequence.copy()
    changed[cut:] = np.array([21, 22, 23, 24], dtype=np.int64)
    examples = PrefixExamples([sequence], MAX_LEN)[cut - 1], PrefixExamples([changed], MAX_LEN)[cut - 1]
    assert examples[0]["target"] != examples[1]["target"]
    histories = [example["history"][None] for example in examples]
    torch.testing.assert_close(model.score(histories[0]), model.score(histories[1]))
    if isinstance(model, SASRec):
        # All-position training: position t's state ignores every position after t.
        full = torch.from_numpy(sequence)[None]
        later_changed = torch.from_numpy(changed)[None]
        torch.testing.assert_close(model.encoder(full)[:, :cut], model.encoder(later_changed)[:, :cut])
        assert not torch.allclose(model.encoder(full)[:, cut:], model.encoder(later_changed)[:, cut:])


def test_left_padding_does_not_change_outputs(model):
    real = torch.randint(1, NUM_ITEMS + 1, (2, 5))
    short = torch.cat([torch.zeros(2, 2, dtype=torch.long), real], dim=1)
    long = torch.cat([torch.zeros(2, MAX_LEN - 5, dtype=torch.long), real], dim=1)
    torch.testing.assert_close(model.score(short), model.score(long), rtol=1e-5, atol=1e-5)


def test_padding_column_is_never_recommended(model):
    scores = model.score(histories())
    assert torch.isinf(scores[:, 0]).all() and (scores[:, 0] < 0).all()
    assert torch.isfinite(scores[:, 1:]).all()


def test_frozen_encoder_is_bit_identical_after_training_and_only_tokens_learn_in_the_distiller():
    model = make_igrsr()
    frozen_before = {k: v.clone() for k, v in model.distiller.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    batch = {
        "history": histories(),
        "target": torch.randint(1, NUM_ITEMS + 1, (5,)),
        "user": torch.tensor([0, 0, 1, 2, 3]),
    }
    for _ in range(3):
        loss, _ = model.training_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        distiller_grads = {n for n, p in model.distiller.named_parameters() if p.grad is not None}
        assert distiller_grads == {"prefix", "intents"}
        assert model.distiller.prefix.grad.abs().sum() > 0
        assert model.distiller.intents.grad.abs().sum() > 0
        optimizer.step()
    for name, value in model.distiller.encoder.state_dict().items():
        assert torch.equal(value, frozen_before[name]), name
    assert not model.distiller.encoder.training, "the frozen encoder must stay in eval mode"


def test_all_intents_masked_gives_finite_outputs_and_gradients():
    model = make_igrsr().train()
    history = histories()
    intents = model.intents(history)
    none_visible = torch.zeros(len(history), model.num_intents, dtype=torch.bool)
    user_vectors = model.reasoner(history, intents, none_visible)
    assert torch.isfinite(user_vectors).all()
    user_vectors.sum().backward()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), name


def test_intent_masks_keep_at_least_one_intent_per_row():
    masks = sample_intent_masks(1000, 3, 0.9, "cpu")
    assert masks.any(dim=1).all()
    assert 0.05 < masks.float().mean() < 0.5


def test_igrsr_starts_as_its_backbone():
    """With the zero-initialized cross-attention, a fresh IGR-SR scores like its SASRec."""
    backbone = make_sasrec().eval()
    model = IGRSR(backbone, num_layers=2, num_heads=2, dropout=0.0).eval()
    h = histories()
    torch.testing.assert_close(model.score(h), backbone.score(h))


@pytest.mark.parametrize("bad", [dict(mask_prob=1.0), dict(cl_weight=-1.0), dict(num_intents=0)])
def test_igrsr_rejects_bad_options(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        IGRSR(make_sasrec(), **bad)


def test_a_model_backend_applies_to_the_ops_that_have_it():
    """One backend name for the whole model: ops without it run on auto; unknown names fail
    when the model is built, naming the argument."""
    from igrsr.nn import CausalSelfAttention, IntentCrossAttention

    def attention_backends(model):
        return {m.backend for m in model.modules() if isinstance(m, (CausalSelfAttention, IntentCrossAttention))}

    model = IGRSR(make_sasrec(), backend="triton")
    assert attention_backends(model) == {"triton"} and model.consistency.backend == "auto"
    model = IGRSR(make_sasrec(), backend="cuda")
    assert attention_backends(model) == {"auto"} and model.consistency.backend == "cuda"
    model = IGRSR(make_sasrec(), backend="reference")
    assert attention_backends(model) == {"reference"} and model.consistency.backend == "reference"
    with pytest.raises(ValueError, match="backend must be 'auto' or one of"):
        IGRSR(make_sasrec(), backend="tritn")


def test_sasrec_rejects_unknown_loss_and_too_long_history():
    with pytest.raises(ValueError, match="loss"):
        SASRec(NUM_ITEMS, loss="hinge")
    with pytest.raises(ValueError, match="max_len"):
        make_sasrec().score(torch.ones(1, MAX_LEN + 1, dtype=torch.long))


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_sasrec_losses_are_finite_and_train(loss):
    model = SASRec(NUM_ITEMS, max_len=MAX_LEN, d_model=16, dropout=0.0, loss=loss)
    history = histories()
    targets = torch.roll(history, -1, dims=1)
    targets[history == 0] = 0
    value, parts = model.training_loss({"history": history, "targets": targets})
    assert torch.isfinite(value) and parts["loss"] > 0
    value.backward()


def test_cpu_dropout_matches_nn_dropout_in_distribution_and_gradient():
    from igrsr.nn import Dropout

    layer = Dropout(0.3).train()
    x = torch.ones(200, 500, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    assert torch.equal(layer.eval()(x), x)
