"""The baselines: each trains in the shared harness and beats popularity; their recipe details."""

import json

import numpy as np
import pytest
import torch

from igrsr import SASRec
from igrsr.cli import main
from igrsr.data import PrefixExamples, SequenceExamples, collate_trimmed, leave_one_out, make_synthetic
from igrsr.models import BERT4Rec, LightRec, Popularity
from igrsr.models.igrsr import FreeIntents
from igrsr.models.lightrec import kmeans
from igrsr.models.registry import BACKBONE, MODELS, build_model, model_config
from igrsr.nn.catalog_loss import catalog_pairwise_kl
from igrsr.train import TrainConfig, Trainer

SMALL = dict(max_len=20, d_model=32, num_layers=1, num_heads=2, dropout=0.1)
NUM_ITEMS = 40
MAX_LEN = 12

# Per-model budget that is enough on the tiny data below (BERT4Rec's cloze task and the
# codebook assignments learn more slowly than next-item prediction).
TRAINING = {
    "bert4rec": dict(options={}, epochs=20, batch_size=32),
    "ssept": dict(options={}, epochs=8, batch_size=32),
    "rearec-erl": dict(options={}, epochs=6, batch_size=64),
    "rearec-prl": dict(options={}, epochs=6, batch_size=64),
    "lightrec": dict(options=dict(num_codebooks=4, codebook_size=32), epochs=8, batch_size=32),
}


@pytest.fixture(scope="module")
def split():
    return leave_one_out(make_synthetic(num_users=300, num_items=120, seq_len=(8, 16), seed=3))


def train(name, split, tmp_path, epochs, batch_size, options=None):
    """Train ``name`` from seed 0; a stage-2 model trains over a SASRec trained as long first."""
    torch.manual_seed(0)
    options = {**SMALL, **(options or {})}
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=5e-3, patience=epochs, progress=False)
    backbone = None
    if MODELS[name].needs_backbone:
        backbone, _ = train(BACKBONE, split, tmp_path, epochs, batch_size)
    model = build_model(name, split.num_items, len(split.train), model_config(name, options), backbone=backbone)
    return model, Trainer(model, split, config, tmp_path / name, name).fit()


@pytest.fixture(scope="module")
def popularity_ndcg(split, tmp_path_factory):
    _, result = train("pop", split, tmp_path_factory.mktemp("pop"), epochs=1, batch_size=256)
    return result["test"]["NDCG@10"]


@pytest.mark.parametrize("name", sorted(TRAINING))
def test_baseline_trains_in_the_harness_and_beats_popularity(name, split, popularity_ndcg, tmp_path):
    _, result = train(name, split, tmp_path, **TRAINING[name])
    assert result["test"]["NDCG@10"] > popularity_ndcg
    assert (tmp_path / name / "best.pt").exists()


def test_popularity_counts_every_training_target_and_has_nothing_to_learn(split, tmp_path):
    model, result = train("pop", split, tmp_path, epochs=2, batch_size=256)
    targets = np.concatenate([sequence[1:] for sequence in split.train])
    # The second epoch doubles every count, which ranks alike: the best epoch stays the first.
    assert result["history"][0]["valid"] == result["history"][1]["valid"] and result["best_epoch"] == 1
    np.testing.assert_array_equal(model.counts.numpy(), np.bincount(targets, minlength=split.num_items + 1))
    assert not list(model.parameters())


def make(name: str, **options):
    """A small untrained model in eval mode (no dropout)."""
    options = dict(max_len=MAX_LEN, d_model=16, num_layers=2, num_heads=2, dropout=0.0, **options)
    backbone = SASRec(NUM_ITEMS, model_config("sasrec", options)) if MODELS[name].needs_backbone else None
    config = model_config(name, {**options, "num_codebooks": 2, "codebook_size": 8})
    model = build_model(name, NUM_ITEMS, 7, config, backbone=backbone)
    if name == "igrsr":
        for layer in model.reasoner.layers:
            if hasattr(layer, "cross_attention"):  # give the zero-initialized cross-attention a say
                torch.nn.init.normal_(layer.cross_attention.out.weight, std=0.3)
    return model.eval()


VARIANTS = [
    ("pop", {}),
    ("bert4rec", {}),
    ("ssept", {}),
    ("rearec-erl", {}),
    ("rearec-prl", {}),
    ("lightrec", {}),
    ("igrsr", dict(intent_source="free")),
    ("igrsr", dict(fusion="concat")),
]


@pytest.mark.parametrize("name, options", VARIANTS)
def test_left_padding_does_not_change_scores(name, options):
    model = make(name, **options)
    real = torch.randint(1, NUM_ITEMS + 1, (3, 5))
    users = torch.tensor([0, 3, 6])
    short = torch.cat([torch.zeros(3, 1, dtype=torch.long), real], dim=1)
    long = torch.cat([torch.zeros(3, MAX_LEN - 5, dtype=torch.long), real], dim=1)
    scores = model.score(short, users)
    torch.testing.assert_close(scores, model.score(long, users), rtol=1e-5, atol=1e-5)
    assert torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    assert scores.shape == (3, NUM_ITEMS + 1)


@pytest.mark.parametrize("name, options", VARIANTS[1:])
def test_training_loss_is_finite_and_reaches_the_parameters(name, options):
    model = make(name, **options).train()
    sequences = [np.arange(1, 9) + shift for shift in range(6)] + [np.array([3, 9, 4])]
    kind = SequenceExamples if model.example_kind == "sequence" else PrefixExamples
    examples = kind(sequences, MAX_LEN)
    batch = collate_trimmed([examples[i] for i in range(len(examples))])
    loss, parts = model.training_loss(batch)
    assert torch.isfinite(loss) and np.isfinite(parts["loss"])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_bert4rec_rebuilds_the_training_sequence_and_masks_real_items_only():
    sequences = [np.array([5, 6, 7, 8, 9]), np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])]
    batch = collate_trimmed([SequenceExamples(sequences, MAX_LEN)[i] for i in range(2)])
    rebuilt = torch.cat([batch["history"], batch["targets"][:, -1:]], dim=1)
    assert rebuilt[0].tolist() == [0] * 8 + [5, 6, 7, 8, 9]
    assert rebuilt[1].tolist() == list(range(3, 16))  # the last max_len + 1 items
    model = BERT4Rec(NUM_ITEMS, max_len=MAX_LEN, d_model=16, mask_ratio=0.3)
    masked = model.cloze_positions(rebuilt.repeat(200, 1))
    assert masked.any(dim=1).all() and not masked[rebuilt.repeat(200, 1) == 0].any()
    assert 0.2 < masked[1::2].float().mean() < 0.4
    lonely = BERT4Rec(NUM_ITEMS, max_len=MAX_LEN, mask_ratio=1e-9).cloze_positions(rebuilt)
    assert lonely.sum() == 2 and lonely[:, -1].all()  # nothing drawn: the last item is masked


def test_bert4rec_attends_in_both_directions_and_never_recommends_the_mask_token():
    model = make("bert4rec")
    tokens = torch.randint(1, NUM_ITEMS + 1, (2, 6))
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] % NUM_ITEMS) + 1
    assert not torch.allclose(model.encode(tokens)[:, 0], model.encode(changed)[:, 0])
    assert model.score(tokens).shape[1] == NUM_ITEMS + 1  # padding and real items, no [mask]


def test_ssept_is_personalized_and_sse_swaps_only_what_it_should():
    model = make("ssept")
    history = torch.randint(1, NUM_ITEMS + 1, (2, 6))
    history[0, :2] = 0
    same_history = history[[0, 0]]
    assert not torch.allclose(*model.score(same_history, torch.tensor([1, 2])))
    model.sse_user_prob, model.sse_item_prob = 1.0, 1.0
    torch.manual_seed(1)
    swapped_history, swapped_users = model.shared_embedding_ids(history.repeat(50, 1), torch.arange(100) % 7)
    assert (swapped_history[0::2, :2] == 0).all() and (swapped_history[history.repeat(50, 1) > 0] > 0).all()
    assert not torch.equal(swapped_history, history.repeat(50, 1))
    assert not torch.equal(swapped_users, torch.arange(100) % 7) and swapped_users.max() < 7
    model.sse_user_prob, model.sse_item_prob = 0.0, 0.0
    unchanged = model.shared_embedding_ids(history, torch.tensor([3, 4]))
    assert torch.equal(unchanged[0], history) and unchanged[1].tolist() == [3, 4]


def test_rearec_states_start_from_the_sequence_and_the_noisy_view_differs():
    model = make("rearec-prl", reasoning_steps=3)
    history = torch.randint(1, NUM_ITEMS + 1, (4, 7))
    states = model.reasoning_states(history)
    assert states.shape == (1, 4, 4, 16)
    torch.testing.assert_close(states[0, :, 0], model.encoder(history)[:, -1])
    assert not torch.allclose(states[0, :, 1], states[0, :, 2])
    views = model.reasoning_states(history, input_noise=0.5)
    torch.testing.assert_close(views[0], states[0])  # the clean view is unchanged
    torch.testing.assert_close(views[1, :, 0], states[0, :, 0])  # noise enters after h_0 only
    assert not torch.allclose(views[1, :, 1:], states[0, :, 1:])


def test_pairwise_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    items = torch.randn(10, 8)
    same = torch.randn(3, 1, 8).expand(-1, 4, -1)
    assert catalog_pairwise_kl(same, items).abs() < 1e-6
    assert catalog_pairwise_kl(torch.randn(3, 4, 8), items) > 0


def lightrec(**options) -> LightRec:
    return LightRec(SASRec(NUM_ITEMS, max_len=MAX_LEN, d_model=16, dropout=0.0), **options)


def test_lightrec_items_are_sums_of_one_codeword_per_codebook():
    model = lightrec(num_codebooks=3, codebook_size=8)
    table = model.encoder.embedding.items
    codes = table.codes()
    assert codes.shape == (3, NUM_ITEMS) and 0 <= codes.min() and codes.max() < 8
    facts = model.facts()
    assert facts["distinct_item_codes"] == len({tuple(item) for item in codes.T.tolist()})
    assert facts["codewords_used"] == [len(set(codebook.tolist())) for codebook in codes]
    composed = sum(table.codebooks[b, codes[b]] for b in range(3))
    weight = table.weight
    torch.testing.assert_close(weight[1:], composed)
    assert torch.equal(weight[0], torch.zeros(16))
    weight[1:].pow(2).sum().backward()  # straight-through: the maps learn the choice
    for parameter in (table.bilinear, table.codebooks):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_lightrec_codes_the_frozen_item_table_of_its_sasrec_and_starts_from_its_encoder():
    backbone = SASRec(NUM_ITEMS, max_len=MAX_LEN, d_model=16, dropout=0.0)
    before = {name: value.clone() for name, value in backbone.state_dict().items()}
    model = LightRec(backbone, num_codebooks=2, codebook_size=8)
    table = model.encoder.embedding.items
    torch.testing.assert_close(table.keys, backbone.item_embeddings[1:])
    assert all(parameter is not table.keys for parameter in model.parameters()) and not table.keys.requires_grad
    trained = model.state_dict()
    for name, value in backbone.encoder.state_dict().items():
        if not name.startswith("embedding.items"):
            torch.testing.assert_close(trained[f"encoder.{name}"], value)
    history = torch.randint(1, NUM_ITEMS + 1, (3, MAX_LEN))
    loss, _ = model.training_loss({"history": history, "targets": history})
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert model.encoder.layers[0].attention.qkv.weight.grad is not None  # the encoder keeps learning
    for name, value in backbone.state_dict().items():  # ... as a copy: the SASRec is untouched
        torch.testing.assert_close(value, before[name])


def textbook_codebook_table(table):
    """Residual straight-through composition as written: ``Σ_b (one_hot + soft - soft.detach()) @ C_b``,
    with ``s_b(r, c) = rᵀ W_b c`` or ``-||r - c||²``."""
    residual, composed = table.keys, 0
    for index, codebook in enumerate(table.codebooks):
        if table.choice == "bilinear":
            similarity = residual @ table.bilinear[index] @ codebook.T
        else:
            similarity = -torch.cdist(residual, codebook).pow(2)
        soft = torch.softmax(similarity / table.temperature, dim=-1)
        hard = torch.nn.functional.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
        codeword = (hard + soft - soft.detach()) @ codebook
        composed, residual = composed + codeword, residual - codeword
    return composed


@pytest.mark.parametrize("choice", ["bilinear", "euclidean"])
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_lightrec_composition_matches_the_textbook_straight_through_forward_and_backward(temperature, choice):
    torch.manual_seed(0)
    model = lightrec(num_codebooks=3, codebook_size=8, codebook_temperature=temperature, codebook_choice=choice)
    table = model.encoder.embedding.items
    if choice == "bilinear":
        with torch.no_grad():  # away from the identity start, so the bilinear maps matter
            table.bilinear.add_(0.3 * torch.randn_like(table.bilinear))
    learned = list(table.parameters())
    assert len(learned) == (2 if choice == "bilinear" else 1)  # no bilinear maps to choose by distance
    upstream = torch.randn(NUM_ITEMS, 16)
    results = []
    for compose in (lambda: table.weight[1:], lambda: textbook_codebook_table(table)):
        table.zero_grad()
        composed = compose()
        (composed * upstream).sum().backward()
        results.append((composed.detach(), [p.grad.clone() for p in learned]))
    (fast, fast_grads), (reference, reference_grads) = results
    torch.testing.assert_close(fast, reference)
    for fast_grad, reference_grad in zip(fast_grads, reference_grads):
        torch.testing.assert_close(fast_grad, reference_grad)


def test_kmeans_finds_separated_clusters_and_takes_fewer_points_than_centres():
    torch.manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    points = torch.cat([centre + 0.1 * torch.randn(50, 2) for centre in centres])
    found = kmeans(points, 3)
    nearest = torch.cdist(centres, found).min(dim=1).values
    assert nearest.max() < 0.1
    few = kmeans(points[:2], 5)
    assert few.shape == (5, 2) and all(any(torch.equal(row, point) for point in points[:2]) for row in few)


def unexplained(table):
    """Mean ``||key - composed|| / ||key||`` over the items."""
    keys = table.keys
    return ((keys - table.weight[1:]).norm(dim=1) / keys.norm(dim=1)).mean().item()


def test_lightrec_kmeans_start_quantizes_the_keys_with_the_euclidean_choice():
    torch.manual_seed(0)
    with torch.no_grad():
        random_start = lightrec(num_codebooks=2, codebook_size=8).encoder.embedding.items
        start = lightrec(num_codebooks=2, codebook_size=8, codebook_choice="euclidean", codebook_start="kmeans")
        table = start.encoder.embedding.items
        assert unexplained(table) < 0.9 * min(1.0, unexplained(random_start))
        first = kmeans_start_reference(table.keys, table.codebooks)
    torch.testing.assert_close(table.codebooks[0], first)


def kmeans_start_reference(keys, codebooks):
    """The first codebook of a k-means start: k-means centres of the keys, so each is the mean of
    the keys nearest to it (a fixed point of Lloyd's step)."""
    nearest = torch.cdist(keys, codebooks[0]).argmin(dim=1)
    means = [keys[nearest == index].mean(dim=0) if (nearest == index).any() else codebooks[0, index]
             for index in range(codebooks.shape[1])]  # fmt: skip
    return torch.stack(means)


@pytest.mark.parametrize("bad", [dict(codebook_choice="cosine"), dict(codebook_start="zeros")])
def test_lightrec_rejects_unknown_codebook_options(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        lightrec(**bad)


def test_lightrec_composes_its_table_once_per_step_and_per_scoring_call(monkeypatch):
    model = lightrec(num_codebooks=2, codebook_size=4)
    table = model.encoder.embedding.items
    calls = []
    compose = table.compose
    monkeypatch.setattr(table, "compose", lambda: calls.append(1) or compose())
    history = torch.randint(1, NUM_ITEMS + 1, (3, MAX_LEN))
    loss, _ = model.training_loss({"history": history, "targets": history})
    loss.backward()
    assert len(calls) == 1
    model.eval()
    model.score(history)
    assert len(calls) == 2
    assert table._table is None  # nothing outlives the call


def test_igrsr_without_lid_uses_the_same_free_intents_for_every_history():
    model = make("igrsr", intent_source="free")
    assert isinstance(model.distiller, FreeIntents)
    intents = model.intents(torch.randint(1, NUM_ITEMS + 1, (2, 5)))
    torch.testing.assert_close(intents[0], intents[1])


def test_igrsr_concat_fusion_sees_intents_and_survives_all_masked():
    model = make("igrsr", fusion="concat")
    assert not hasattr(model.reasoner.layers[0], "cross_attention")
    history = torch.randint(1, NUM_ITEMS + 1, (3, 5))
    intents = model.intents(history)
    none_visible = torch.zeros(3, model.num_intents, dtype=torch.bool)
    with_intents = model.reasoner(history, intents)
    without = model.reasoner(history, intents, none_visible)
    assert torch.isfinite(without).all() and not torch.allclose(with_intents, without)


def test_each_model_takes_its_own_options_and_subclasses_their_base_class_ones():
    options = dict(d_model=8, num_layers=1, reasoning_steps=3, kl_weight=0.1, num_intents=2, anneal_base=2.0)
    erl = model_config("rearec-erl", options)
    assert (erl.d_model, erl.num_layers, erl.reasoning_steps, erl.kl_weight) == (8, 1, 3, 0.1)
    assert model_config("rearec-prl", options).anneal_base == 2.0 and not hasattr(erl, "anneal_base")
    lightrec = model_config("lightrec", dict(loss="bce", codebook_size=4, mask_ratio=0.5))
    assert lightrec == LightRec.Config(codebook_size=4)
    assert isinstance(build_model("pop", 10, 3, model_config("pop", dict(d_model=8))), Popularity)
    assert build_model("ssept", 10, 3, model_config("ssept", {})).num_users == 3


@pytest.mark.parametrize("bad", [dict(mask_ratio=0.0), dict(sse_user_prob=1.5), dict(reasoning_steps=0)])
def test_baselines_reject_bad_options(bad):
    name = {"mask_ratio": "bert4rec", "sse_user_prob": "ssept", "reasoning_steps": "rearec-erl"}[next(iter(bad))]
    with pytest.raises(ValueError, match=next(iter(bad))):
        model_config(name, bad)


def test_command_line_trains_the_baselines(tmp_path, capsys):
    data = make_synthetic(num_users=80, num_items=40, seq_len=(6, 10), seed=1)
    path = tmp_path / "tiny.txt"
    path.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(data.sequences)))
    models = "pop,bert4rec,ssept,rearec-erl,rearec-prl,lightrec"
    args = ["train", "--model", models, "--data", str(path), "--out", str(tmp_path / "runs"), "--epochs", "1",
            "--no-progress", "--d-model", "16", "--num-layers", "1", "--max-len", "10", "--mask-ratio", "0.4",
            "--reasoning-steps", "1", "--num-codebooks", "2", "--codebook-size", "8", "--codebook-temperature",
            "0.9", "--codebook-choice", "euclidean", "--codebook-start", "kmeans"]  # fmt: skip
    assert main(args) == 0
    output = capsys.readouterr().out
    for name in models.split(","):
        assert f"{name}: " in output
    results = {p.parent.name.rsplit("-", 1)[0] for p in (tmp_path / "runs" / "tiny").glob("*/results.json")}
    assert results == {*models.split(","), "sasrec"}  # LightRec's stage 1
    (lightrec_results,) = (tmp_path / "runs" / "tiny").glob("lightrec-*/results.json")
    lightrec_run = json.loads(lightrec_results.read_text())
    assert lightrec_run["config"] == {"num_codebooks": 2, "codebook_size": 8, "codebook_temperature": 0.9,
                                      "codebook_choice": "euclidean", "codebook_start": "kmeans"}  # fmt: skip
    assert 1 <= lightrec_run["facts"]["distinct_item_codes"] <= 40


def test_the_codebook_start_script_reports_how_each_start_explains_the_keys():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "lightrec_codebook_start.py"
    spec = importlib.util.spec_from_file_location("lightrec_codebook_start", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    torch.manual_seed(0)
    backbone = SASRec(200, max_len=8, d_model=16, num_layers=1)
    rows = {(row["codebook_start"], row["codebook_choice"]): row for row in script.codebook_starts(
        backbone, num_codebooks=2, codebook_size=16)}  # fmt: skip
    assert set(rows) == set(script.STARTS)
    for row in rows.values():
        assert len(row["codewords_used"]) == 2 and all(1 <= used <= 16 for used in row["codewords_used"])
        assert 0 < row["unexplained"] < 2
    # Residual k-means with the nearest-codeword choice explains more of a key than a random start.
    assert rows["kmeans", "euclidean"]["unexplained"] < rows["random", "bilinear"]["unexplained"]
