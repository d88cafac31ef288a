"""The catalog loss: every model's loss through one function, equal to the materialized one;
the sampled losses (sampled softmax with log-Q correction, gBCE) and their options."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from igrsr.cli import main
from igrsr.config import ConfigError
from igrsr.data import PrefixExamples, SequenceExamples, collate_trimmed, leave_one_out, make_synthetic
from igrsr.eval import evaluate
from igrsr.models import SASRec
from igrsr.models.igrsr import sample_intent_masks
from igrsr.models.registry import MODELS, build_model, model_config
from igrsr.nn.catalog_loss import (
    CatalogLoss,
    NegativeSampler,
    catalog_pairwise_kl,
    gbce_beta,
    gbce_loss,
    sampled_softmax_loss,
)
from igrsr.train import TrainConfig, make_spec, train_model

NUM_ITEMS = 40
MAX_LEN = 12
LOSS_MODELS = ["sasrec", "bert4rec", "ssept", "rearec-erl", "rearec-prl", "lightrec", "igrsr"]


def make(name: str, **options):
    """A small untrained model in training mode, with dropout so that both losses must draw the same masks."""
    options = dict(max_len=MAX_LEN, d_model=16, num_layers=1, num_heads=2, dropout=0.2, **options)
    backbone = SASRec(NUM_ITEMS, model_config("sasrec", options)) if MODELS[name].needs_backbone else None
    config = model_config(name, {**options, "num_codebooks": 2, "codebook_size": 8, "num_intents": 2})
    model = build_model(name, NUM_ITEMS, 7, config, backbone=backbone)
    if name == "bert4rec":  # a bias that is not zero, so that folding it into the product shows
        torch.nn.init.normal_(model.output_bias)
    return model.train()


def batch_for(model):
    sequences = [np.arange(1, 9) + shift for shift in range(6)] + [np.array([3, 9, 4]), np.array([40, 1, 40, 2])]
    kind = SequenceExamples if model.example_kind == "sequence" else PrefixExamples
    examples = kind(sequences, MAX_LEN)
    batch = collate_trimmed([examples[i] for i in range(len(examples))])
    batch["user"] = torch.arange(len(batch["history"])) % 7
    return batch


def catalog_ce(hidden, table, targets):
    """The loss every model computed before the catalog loss: the materialized full softmax."""
    return F.cross_entropy(hidden @ table[1:].T, targets - 1)


def materialized_loss(name: str, model, batch) -> torch.Tensor:
    """Each model's training loss as it was written with the ``rows × N`` logits (main before issue 21)."""
    history = batch["history"]
    if name in ("sasrec", "lightrec", "ssept"):
        targets = batch["targets"]
        real = targets > 0
        if name == "ssept":
            history, users = model.shared_embedding_ids(history, batch["user"])
            hidden = model.hidden_states(history, users)
        else:
            hidden = model.encoder(history)
        return catalog_ce(hidden[real], model.item_embeddings, targets[real])
    if name == "bert4rec":
        sequence = torch.cat([history, batch["targets"][:, -1:]], dim=1)
        masked = model.cloze_positions(sequence)
        logits = model.logits(model.encode(sequence.masked_fill(masked, model.mask_token))[masked])
        return F.cross_entropy(logits[:, 1:], sequence[masked] - 1)
    if name == "rearec-erl":
        states = model.reasoning_states(history)[0]
        log_probs = F.log_softmax(states @ model.item_embeddings[1:].T / model.temperature, dim=-1)
        targets = (batch["target"] - 1)[:, None].expand(-1, states.shape[1])
        ce = F.nll_loss(log_probs.transpose(1, 2), targets, reduction="none").mean(dim=0).sum()
        return ce - model.kl_weight * mean_pairwise_kl(log_probs)
    if name == "rearec-prl":
        views = model.reasoning_states(history, model.reasoning_noise)
        clean, noisy = views[0], views[1]
        logits = clean @ model.item_embeddings[1:].T / model.temperature  # (B, K+1, N)
        targets = batch["target"] - 1
        steps = clean.shape[1] - 1
        annealing = model.anneal_base ** torch.arange(steps, 0, -1, dtype=clean.dtype)
        progressive = F.cross_entropy(
            (logits[:, :-1] / annealing[None, :, None]).flatten(0, 1), targets.repeat_interleave(steps)
        )
        consistency = torch.stack(
            [model.contrastive(noisy[:, k], clean[:, k], group_ids=batch["user"]) for k in range(1, steps + 1)]
        ).mean()
        return F.cross_entropy(logits[:, -1], targets) + progressive + model.reasoning_cl_weight * consistency
    assert name == "igrsr"
    history, target = batch["history"], batch["target"]
    intents = model.intents(history)
    size = len(history)
    views = [sample_intent_masks(size, model.num_intents, model.mask_prob, history.device) for _ in range(2)]
    user_vectors = model.reasoner(
        history.repeat(3, 1), intents.repeat(3, 1, 1), torch.cat([torch.ones_like(views[0]), *views])
    )
    full, first, second = user_vectors.split(size)
    ce = catalog_ce(full, model.reasoner.item_embeddings, target)
    return ce + model.cl_weight * model.consistency(first, second, group_ids=batch["user"])


def mean_pairwise_kl(log_probs: torch.Tensor) -> torch.Tensor:
    """ReaRec-ERL's diversity term as it was materialized: the mean over rows and ordered pairs
    ``j != i`` of ``KL(p_j || sg(p_i))`` from log-probabilities ``(B, S, N)``."""
    probs = log_probs.exp()
    negative_entropy = (probs * log_probs).sum(dim=-1)
    cross = probs @ log_probs.detach().transpose(1, 2)  # [b, j, i] = Σ p_j log p_i
    off_diagonal = ~torch.eye(log_probs.shape[1], dtype=torch.bool)
    return (negative_entropy[:, :, None] - cross)[:, off_diagonal].mean()


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_streamed_pairwise_kl_equals_the_materialized_one_forward_and_backward(chunk_size):
    generator = torch.Generator().manual_seed(0)
    states = (3 * torch.randn(4, 3, 8, generator=generator, dtype=torch.float64)).requires_grad_()
    weight = torch.randn(NUM_ITEMS, 8, generator=generator, dtype=torch.float64).requires_grad_()
    streamed = catalog_pairwise_kl(states, weight, chunk_size)
    materialized = mean_pairwise_kl(F.log_softmax(states @ weight.T, dim=-1))
    torch.testing.assert_close(streamed, materialized)
    gradients = torch.autograd.grad(streamed, (states, weight))
    for got, expected in zip(gradients, torch.autograd.grad(materialized, (states, weight))):
        torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="S >= 2"):
        catalog_pairwise_kl(states[:, :1], weight)


def loss_and_gradients(model, compute, seed=0):
    model.zero_grad()
    torch.manual_seed(seed)
    loss = compute()
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", LOSS_MODELS)
def test_every_models_training_loss_equals_its_materialized_loss_and_gradients(name):
    torch.manual_seed(1)
    model = make(name)
    model.catalog_loss.backend = "chunked"  # "auto" would take the reference at this small size
    batch = batch_for(model)
    loss, gradients = loss_and_gradients(model, lambda: model.training_loss(batch)[0])
    expected, expected_gradients = loss_and_gradients(model, lambda: materialized_loss(name, model, batch))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert gradients.keys() == expected_gradients.keys() and gradients
    for parameter, gradient in gradients.items():
        expected_gradient = expected_gradients[parameter]
        # float32 rounding relative to the gradient's scale (ReaRec's logits are multiplied by 1/0.07)
        atol = 1e-6 + 1e-5 * float(expected_gradient.abs().max())
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=atol, msg=parameter)


@pytest.mark.parametrize("loss", ["sampled-softmax", "gbce", "bce"])
@pytest.mark.parametrize("name", LOSS_MODELS)
def test_every_model_trains_with_the_sampled_losses(name, loss):
    torch.manual_seed(0)
    model = make(name, loss=loss, num_negatives=8)
    value, parts = model.training_loss(batch_for(model))
    value.backward()
    assert torch.isfinite(value) and parts["loss"] > 0
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(g).all() for g in gradients)


def rows(count=6, dim=8, items=NUM_ITEMS, scale=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    hidden = scale * torch.randn(count, dim, generator=generator)
    weight = torch.randn(items, dim, generator=generator)
    classes = torch.randint(items, (count,), generator=generator)
    return hidden.requires_grad_(), weight.requires_grad_(), classes


def test_sampled_softmax_over_every_item_once_is_the_full_softmax():
    hidden, weight, classes = rows()
    every_item = torch.arange(NUM_ITEMS)
    # Each item drawn once is an expected count of 1: log(K q) = 0 for every negative.
    sampled = sampled_softmax_loss(hidden, weight, classes, every_item, torch.zeros(NUM_ITEMS))
    full = F.cross_entropy(hidden @ weight.T, classes)
    torch.testing.assert_close(sampled, full)
    sampled_gradients = torch.autograd.grad(sampled, (hidden, weight))
    for got, expected in zip(sampled_gradients, torch.autograd.grad(full, (hidden, weight))):
        torch.testing.assert_close(got, expected)


def test_uniform_sampling_of_the_whole_catalog_has_no_log_q_shift():
    # K = N uniform draws: log(K q) = log(N / N) = 0, the correction of the case above.
    loss = CatalogLoss(NUM_ITEMS, "sampled-softmax", num_negatives=NUM_ITEMS)
    negatives = loss.sampler.sample((NUM_ITEMS,), torch.device("cpu"))
    assert torch.allclose(math.log(NUM_ITEMS) + loss.sampler.log_probability(negatives), torch.zeros(NUM_ITEMS))


def zipf_counts(items=NUM_ITEMS):
    counts = torch.zeros(items + 1, dtype=torch.long)
    counts[1:] = (1000 / torch.arange(1, items + 1)).long()
    return counts


def test_popularity_sampler_draws_in_proportion_to_counts_and_reports_their_log_q():
    sampler = NegativeSampler(NUM_ITEMS, "popularity")
    counts = zipf_counts()
    sampler.set_item_counts(counts)
    torch.manual_seed(0)
    drawn = sampler.sample((200_000,), torch.device("cpu"))
    share = torch.bincount(drawn, minlength=NUM_ITEMS) / len(drawn)
    probabilities = counts[1:] / counts[1:].sum()
    torch.testing.assert_close(share, probabilities.float(), atol=3e-3, rtol=0)
    torch.testing.assert_close(sampler.log_probability(torch.arange(NUM_ITEMS)), probabilities.log().float())


def test_log_q_correction_makes_popularity_sampled_softmax_converge_to_the_full_softmax():
    """Σ_k exp(s_k) / (K q_k) estimates the partition function whatever q: with many draws the
    corrected loss nears the full softmax, while a uniform correction of the same draws does not."""
    hidden, weight, classes = rows()
    loss = CatalogLoss(NUM_ITEMS, "sampled-softmax", num_negatives=100_000, sampler="popularity")
    loss.sampler.set_item_counts(zipf_counts())
    torch.manual_seed(0)
    with torch.no_grad():
        corrected = loss(hidden, torch.cat([torch.zeros(1, 8), weight]), classes + 1)
        full = F.cross_entropy(hidden @ weight.T, classes)
        torch.manual_seed(0)
        negatives = loss.sampler.sample((100_000,), torch.device("cpu"))
        uniform_correction = torch.full((100_000,), math.log(100_000 / NUM_ITEMS))
        uncorrected = sampled_softmax_loss(hidden, weight, classes, negatives, uniform_correction)
    assert abs(corrected - full) < 0.02
    assert abs(uncorrected - full) > 0.2


def test_accidental_hits_are_masked_out_of_their_row():
    hidden, weight, classes = rows(count=2)
    classes = torch.tensor([3, 5])
    negatives = torch.tensor([3, 7, 9])  # 3 is row 0's positive
    log_counts = torch.zeros(3)
    loss = sampled_softmax_loss(hidden, weight, classes, negatives, log_counts)
    first = sampled_softmax_loss(hidden[:1], weight, classes[:1], negatives[1:], log_counts[1:])
    second = sampled_softmax_loss(hidden[1:], weight, classes[1:], negatives, log_counts)
    torch.testing.assert_close(loss, (first + second) / 2)
    per_row = torch.tensor([[3, 7], [9, 9]])
    gbce = gbce_loss(hidden, weight, classes, per_row, beta=0.5)
    # Row 0's hit contributes nothing; the mean over 1 + K terms is kept.
    positive = F.softplus(-(hidden * weight[classes]).sum(-1))
    negative = F.softplus(hidden @ weight.T)
    expected = ((0.5 * positive[0] + negative[0, 7]) / 3 + (0.5 * positive[1] + 2 * negative[1, 9]) / 3) / 2
    torch.testing.assert_close(gbce, expected)


def test_gbce_with_t_zero_is_plain_bce_over_the_sampled_negatives():
    hidden, weight, classes = rows()
    negatives = (classes[:, None] + torch.arange(1, 6)) % NUM_ITEMS  # five negatives, never the positive
    assert gbce_beta(5, NUM_ITEMS, 0.0) == 1.0
    loss = gbce_loss(hidden, weight, classes, negatives, beta=gbce_beta(5, NUM_ITEMS, 0.0))
    logits = torch.cat(
        [(hidden * weight[classes]).sum(-1, keepdim=True), torch.einsum("rd,rkd->rk", hidden, weight[negatives])], 1
    )
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, labels))


def test_gbce_positive_term_is_the_papers_transformed_logit():
    """gSASRec: β = α (t (1 − 1/α) + 1/α), α = K / (N − 1); the positive enters BCE as the logit
    log(1 / (σ(s)^(−β) − 1)), whose probability is σ(s)^β."""
    num_negatives, calibration = 8, 0.75
    alpha = num_negatives / (NUM_ITEMS - 1)
    beta = gbce_beta(num_negatives, NUM_ITEMS, calibration)
    assert beta == pytest.approx(alpha * (calibration * (1 - 1 / alpha) + 1 / alpha))
    assert gbce_beta(num_negatives, NUM_ITEMS, 1.0) == pytest.approx(alpha)
    hidden, weight, classes = rows()
    far_negatives = torch.full((len(classes), 1), 0)
    hidden, weight = hidden.double(), weight.double()
    loss = gbce_loss(hidden, weight, classes, far_negatives, beta)
    score = (hidden * weight[classes]).sum(-1)
    transformed = torch.log(1 / (torch.sigmoid(score) ** -beta - 1))
    negative = F.softplus((hidden * weight[far_negatives[:, 0]]).sum(-1))
    negative = negative.masked_fill(far_negatives[:, 0] == classes, 0)
    positive = F.binary_cross_entropy_with_logits(transformed, torch.ones_like(transformed), reduction="none")
    torch.testing.assert_close(loss, ((positive + negative) / 2).mean().float())


@pytest.mark.parametrize("loss", ["ce", "sampled-softmax", "bce"])
def test_a_one_item_catalog_is_a_valid_catalog(loss):
    hidden = torch.randn(3, 4)
    value = CatalogLoss(1, loss, num_negatives=2)(hidden, torch.randn(2, 4), torch.ones(3, dtype=torch.long))
    assert torch.isfinite(value)


@pytest.mark.parametrize("loss", ["ce", "sampled-softmax", "gbce", "bce"])
def test_gradients_stay_finite_under_very_large_logits(loss):
    hidden, weight, classes = rows(scale=300.0)
    criterion = CatalogLoss(NUM_ITEMS, loss, num_negatives=8)
    table = torch.cat([torch.zeros(1, 8), weight], dim=0)
    value = criterion(hidden, table, classes + 1)
    gradients = torch.autograd.grad(value, (hidden, weight))
    assert torch.isfinite(value) and all(torch.isfinite(g).all() for g in gradients)


@pytest.mark.parametrize(
    "options, option",
    [
        (dict(loss="hinge"), "loss"),
        (dict(num_negatives=0), "num_negatives"),
        (dict(loss="gbce", num_negatives=NUM_ITEMS), "num_negatives"),
        (dict(loss="gbce", sampler="popularity"), "sampler"),
        (dict(sampler="zipf"), "sampler"),
        (dict(gbce_t=1.5), "gbce_t"),
    ],
)
def test_bad_loss_options_are_errors_naming_the_option(options, option):
    with pytest.raises(ConfigError) as error:
        CatalogLoss(NUM_ITEMS, **options)
    assert error.value.option == option


@pytest.mark.parametrize(
    "options, option", [(dict(loss="bce", sampler="popularity"), "sampler"), (dict(gbce_t=-1), "gbce_t")]
)
def test_model_configs_check_the_loss_options(options, option):
    with pytest.raises(ConfigError) as error:
        model_config("bert4rec", options)
    assert error.value.option == option


def test_popularity_sampling_without_counts_says_how_to_give_them():
    model = make("sasrec", loss="sampled-softmax", sampler="popularity", num_negatives=8)
    with pytest.raises(ValueError, match="item_counts"):
        model.training_loss(batch_for(model))
    with pytest.raises(ValueError, match=r"shape \(41,\)"):
        model.set_item_counts(torch.ones(NUM_ITEMS))
    model.set_item_counts(zipf_counts())
    assert torch.isfinite(model.training_loss(batch_for(model))[0])


def test_stage_two_models_share_their_backbones_loss_and_its_counts():
    backbone = SASRec(NUM_ITEMS, max_len=MAX_LEN, d_model=16, loss="sampled-softmax", sampler="popularity")
    model = build_model("igrsr", NUM_ITEMS, 7, model_config("igrsr", {}), backbone=backbone, item_counts=zipf_counts())
    assert model.catalog_loss.loss == "sampled-softmax" and model.catalog_loss.sampler.probabilities is not None
    assert not any("probabilities" in key for key in model.state_dict())


@pytest.fixture(scope="module")
def split():
    return leave_one_out(make_synthetic(num_users=300, num_items=120, seq_len=(8, 16), seed=3))


def popularity_ndcg(split) -> float:
    counts = torch.from_numpy(split.item_counts()).float()
    return evaluate(
        lambda history, users: counts.expand(len(history), -1), split.test_history, split.test_target,
        split.num_items, max_len=20,
    )["NDCG@10"]  # fmt: skip


@pytest.mark.parametrize(
    "options",
    # On this 120-item catalog more BCE-family negatives train worse in 8 epochs (K = 32: NDCG@10
    # 0.17-0.19 whatever t), so gbce runs with K = 2.
    [dict(loss="sampled-softmax", sampler="popularity", num_negatives=32), dict(loss="gbce", num_negatives=2)],
    ids=["sampled-softmax", "gbce"],
)
def test_sasrec_trained_with_a_sampled_loss_beats_popularity(options, split, tmp_path):
    model_options = dict(max_len=20, d_model=32, num_layers=1, num_heads=2, dropout=0.1, **options)
    train = TrainConfig(epochs=8, batch_size=32, lr=5e-3, patience=8, progress=False)
    data = make_synthetic(num_users=300, num_items=120, seq_len=(8, 16), seed=3)
    result = train_model(make_spec("sasrec", model_options, train), data, split, tmp_path, fresh=True)
    assert result["config"]["loss"] == options["loss"]
    assert result["test"]["NDCG@10"] > popularity_ndcg(split)


def test_the_command_line_takes_the_loss_options_and_names_a_bad_one(tmp_path, capsys):
    data = make_synthetic(num_users=80, num_items=40, seq_len=(6, 10), seed=0)
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(data.sequences)))
    common = ["train", "--model", "sasrec", "--data", str(path), "--out", str(tmp_path / "runs"), "--epochs", "1",
              "--no-progress", "--d-model", "16", "--num-layers", "1", "--max-len", "10"]  # fmt: skip
    assert main([*common, "--loss", "sampled-softmax", "--num-negatives", "8", "--sampler", "popularity"]) == 0
    config = json.loads(next((tmp_path / "runs" / "tiny").glob("sasrec-*/results.json")).read_text())["config"]
    assert (config["loss"], config["num_negatives"], config["sampler"]) == ("sampled-softmax", 8, "popularity")
    capsys.readouterr()
    assert main([*common, "--loss", "gbce", "--sampler", "popularity"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "sampler must be uniform with loss=gbce" in error, error
