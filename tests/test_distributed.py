"""Multi-process training on two gloo ranks (spawned by the tests), reduced precision, compile.

Each ``*_on_rank`` function runs in both spawned processes (``run_processes``, as
``igrsr train --nproc 2`` runs its ranks); rank 0 saves what it saw for the test to compare
with one process computing the same thing.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from igrsr import IGRSR, SASRec
from igrsr.data import (
    LengthBucketSampler,
    PrefixExamples,
    SequenceExamples,
    collate_trimmed,
    leave_one_out,
    make_synthetic,
)
from igrsr.distributed import is_main_process, process_group, rank, run_processes, shard, world_size
from igrsr.eval import model_ranks
from igrsr.eval.distributed import shared_model_ranks
from igrsr.models.registry import build_model, model_config
from igrsr.nn import InfoNCELoss
from igrsr.train import TrainConfig, Trainer
from igrsr.train.trainer import DYNAMO_SETTINGS, TrainingLoss

SMALL = dict(max_len=12, d_model=16, num_layers=1, num_heads=2, dropout=0.0)
WORLD = 2


def small_split():
    return leave_one_out(make_synthetic(num_users=121, num_items=60, seq_len=(6, 12), seed=5))


def train_config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 5e-3, "patience": 3, "progress": False, **overrides})


def on_two_ranks(worker, *args) -> None:
    """``worker(*args)`` on two gloo ranks; a failing rank fails the test."""
    assert run_processes(WORLD, worker, [str(arg) for arg in args]) == 0


def save_on_rank_zero(obj, path: str) -> None:
    if is_main_process():
        torch.save(obj, path)


def sasrec_and_batch():
    torch.manual_seed(0)
    split = small_split()
    examples = SequenceExamples(split.train, SMALL["max_len"])
    # SASRec's loss is a mean over every target of the batch: halves of as many targets each
    # (histories of one length) make the mean of the ranks' means the whole batch's mean.
    lengths = examples.history_lengths()
    same_length = np.flatnonzero(lengths == np.bincount(lengths).argmax())[: 2 * 8]
    return SASRec(split.num_items, **SMALL), examples.batch(same_length)


def ddp_step_on_rank(argv) -> int:
    with process_group("cpu"):
        model, batch = sasrec_and_batch()
        rows = slice(rank() * 8, (rank() + 1) * 8)
        step = torch.nn.parallel.DistributedDataParallel(TrainingLoss(model))
        loss, _ = step({name: value[rows] for name, value in batch.items()})
        loss.backward()
        losses = [torch.zeros(()) for _ in range(world_size())]
        torch.distributed.all_gather(losses, loss.detach())
        save_on_rank_zero({"loss": torch.stack(losses).mean(), "grads": [p.grad for p in model.parameters()]}, argv[0])
    return 0


def test_a_ddp_step_over_two_halves_is_one_process_over_the_whole_batch(tmp_path):
    on_two_ranks(ddp_step_on_rank, tmp_path / "ddp.pt")
    ddp = torch.load(tmp_path / "ddp.pt")
    model, batch = sasrec_and_batch()
    loss, _ = model.training_loss(batch)
    loss.backward()
    torch.testing.assert_close(ddp["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    for got, expected in zip(ddp["grads"], [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def contrastive_inputs():
    torch.manual_seed(1)
    encoder = torch.nn.Linear(6, 5)
    views = torch.randn(2, 10, 6)
    # Users 3 and 7 have rows on both ranks: they must not be each other's negatives there.
    users = torch.tensor([3, 7, 1, 2, 9, 3, 4, 7, 5, 6])
    return encoder, views, users


def contrastive_loss(encoder, views, users):
    return InfoNCELoss(temperature=0.2, backend="reference")(encoder(views[0]), encoder(views[1]), group_ids=users)


def infonce_on_rank(argv) -> int:
    with process_group("cpu"):
        encoder, views, users = contrastive_inputs()
        rows = slice(rank() * 5, (rank() + 1) * 5)
        ddp = torch.nn.parallel.DistributedDataParallel(encoder)
        loss = contrastive_loss(ddp, views[:, rows], users[rows])
        loss.backward()
        save_on_rank_zero({"loss": loss.detach(), "grads": [p.grad for p in encoder.parameters()]}, argv[0])
    return 0


def test_cross_rank_infonce_is_infonce_over_the_concatenated_batch(tmp_path):
    on_two_ranks(infonce_on_rank, tmp_path / "infonce.pt")
    ddp = torch.load(tmp_path / "infonce.pt")
    encoder, views, users = contrastive_inputs()
    loss = contrastive_loss(encoder, views, users)
    loss.backward()
    torch.testing.assert_close(ddp["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    for got, expected in zip(ddp["grads"], [p.grad for p in encoder.parameters()]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def personalized_model(split):
    torch.manual_seed(2)  # SSE-PT: scores depend on the user id, so the user blocks must map back
    return build_model("ssept", split.num_items, len(split.train), model_config("ssept", SMALL)).eval()


def evaluation_on_rank(argv) -> int:
    with process_group("cpu"):
        split = small_split()
        ranks = shared_model_ranks(personalized_model(split), split, "test", batch_size=7)
        save_on_rank_zero(ranks, argv[0])
    return 0


def test_evaluation_shared_by_two_ranks_gives_exactly_the_single_process_ranks(tmp_path):
    on_two_ranks(evaluation_on_rank, tmp_path / "ranks.pt")
    split = small_split()
    assert len(split.train) % WORLD  # blocks of unequal size
    expected = model_ranks(personalized_model(split), split, "test", batch_size=7)
    assert torch.equal(torch.load(tmp_path / "ranks.pt"), expected)


class Interrupted(Exception):
    pass


def igrsr_trainer(directory: Path, config: TrainConfig) -> Trainer:
    split = small_split()
    torch.manual_seed(0)
    backbone = SASRec(split.num_items, **{**SMALL, "dropout": 0.2})
    model = IGRSR(backbone, num_layers=1, num_heads=2, dropout=0.2, num_intents=2, num_prefix=1)
    return Trainer(model, split, config, directory, "igrsr")


def resume_on_rank(argv) -> int:
    """``straight``: train uninterrupted in one folder, and in another until it is killed after
    its first epoch's checkpoint; ``resume``: continue that one in new processes."""
    phase, out = argv[0], Path(argv[1])
    with process_group("cpu"):
        if phase == "straight":
            save_on_rank_zero(igrsr_trainer(out / "straight", train_config()).fit(), out / "straight.pt")
            interrupted = igrsr_trainer(out / "stopped", train_config())
            record = interrupted._record

            def record_then_die(*args):
                record(*args)
                raise Interrupted

            interrupted._record = record_then_die
            with pytest.raises(Interrupted):
                interrupted.fit()
        else:
            save_on_rank_zero(igrsr_trainer(out / "stopped", train_config()).fit(resume=True), out / "resumed.pt")
    return 0


def test_a_two_rank_run_killed_midway_resumes_to_the_uninterrupted_result(tmp_path):
    on_two_ranks(resume_on_rank, "straight", tmp_path)
    assert torch.load(tmp_path / "stopped" / "last.pt", weights_only=False)["epoch"] == 1
    on_two_ranks(resume_on_rank, "resume", tmp_path)
    straight, resumed = (torch.load(tmp_path / f"{name}.pt", weights_only=False) for name in ("straight", "resumed"))
    assert resumed["epochs_run"] == straight["epochs_run"] == 3
    assert [row["train_loss"] for row in resumed["history"]] == [row["train_loss"] for row in straight["history"]]
    assert resumed["test"] == straight["test"]
    with pytest.raises(ValueError, match="written by a run of 2 process.*--nproc 2"):
        igrsr_trainer(tmp_path / "stopped", train_config()).fit(resume=True)


def test_every_rank_takes_its_share_of_the_same_global_order():
    batches = [[index] for index in range(7)]
    shares = [shard(batches, r, 3) for r in range(3)]
    assert [len(share) for share in shares] == [3, 3, 3]  # padded with the epoch's first batches
    assert sorted(sum(shares, [])) == sorted(batches + batches[:2])
    assert shard(batches, 0, 1) == batches


def sasrec_trainer(tmp_path: Path, **overrides) -> Trainer:
    split = small_split()
    torch.manual_seed(0)
    return Trainer(SASRec(split.num_items, **SMALL), split, train_config(epochs=2, **overrides), tmp_path, "sasrec")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_training_stays_finite_and_close_to_fp32(tmp_path, precision):
    full = sasrec_trainer(tmp_path / "fp32").fit()
    reduced = sasrec_trainer(tmp_path / precision, precision=precision).fit()
    full_losses = [row["train_loss"] for row in full["history"]]
    reduced_losses = [row["train_loss"] for row in reduced["history"]]
    assert np.isfinite(reduced_losses).all()
    np.testing.assert_allclose(reduced_losses, full_losses, rtol=0.02)
    assert reduced["test"]["NDCG@10"] == pytest.approx(full["test"]["NDCG@10"], abs=0.05)
    weights = dict(torch.load(tmp_path / precision / "last.pt", weights_only=False)["model"])
    assert all(value.dtype == torch.float32 for value in weights.values() if value.is_floating_point())


def compiled_models():
    split = small_split()
    torch.manual_seed(0)
    sasrec = SASRec(split.num_items, **SMALL)
    # Dropout off and cl_weight on: the InfoNCE op and the intent masks are traced too.
    igrsr = IGRSR(copy.deepcopy(sasrec), num_layers=1, num_heads=2, dropout=0.0, num_intents=2, num_prefix=1)
    sequence_batch = SequenceExamples(split.train, SMALL["max_len"]).batch(np.arange(16))
    prefix_batch = PrefixExamples(split.train, SMALL["max_len"]).batch(np.arange(16))
    return [(sasrec, sequence_batch), (igrsr, prefix_batch)]


@pytest.mark.parametrize("index", [0, 1], ids=["sasrec", "igrsr"])
def test_the_training_step_compiles_without_graph_breaks_and_gives_the_eager_loss(index, monkeypatch):
    torch._dynamo.reset()
    for name, value in DYNAMO_SETTINGS.items():  # what the trainer sets for --compile
        monkeypatch.setattr(torch._dynamo.config, name, value)
    model, batch = compiled_models()[index]
    explanation = torch._dynamo.explain(TrainingLoss(model))(batch)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    losses, grads = [], []
    # aot_eager traces forward and backward as inductor does, without its (CPU-minutes) code
    # generation; with inductor the losses agree as well (run by hand).
    for step in (TrainingLoss(model), torch.compile(TrainingLoss(model), backend="aot_eager")):
        torch.manual_seed(3)
        loss, parts = step(batch)
        model.zero_grad()
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert all(isinstance(value, torch.Tensor) for value in parts.values())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for compiled, eager in zip(*grads, strict=True):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-6)


def test_the_trainer_batches_and_draws_as_its_data_loader_did(tmp_path):
    """Seeded runs train as before batches were built at once: the same batches, and the global
    RNG (dropout) left where iterating the old DataLoader left it."""
    trainer = sasrec_trainer(tmp_path)
    torch.manual_seed(7)
    trainer.loader_generator.manual_seed(7)
    batches = [trainer.examples.batch(indices) for indices in trainer._epoch_batches()]
    after_trainer = torch.get_rng_state()
    torch.manual_seed(7)
    sampler = LengthBucketSampler(trainer.examples.history_lengths(), 16, torch.Generator().manual_seed(7))
    loader = DataLoader(trainer.examples, batch_sampler=sampler, collate_fn=collate_trimmed)
    expected = list(tqdm(loader, disable=True))
    assert torch.equal(torch.get_rng_state(), after_trainer)
    assert len(batches) == len(expected)
    for got, old in zip(batches, expected):
        assert all(torch.equal(got[name], old[name]) for name in old)


def test_a_non_finite_loss_stops_training_naming_the_epoch_and_steps(tmp_path):
    trainer = sasrec_trainer(tmp_path, log_every=2)
    training_loss, steps = trainer.model.training_loss, []

    def loss_not_finite_at_step_three(batch):
        loss, parts = training_loss(batch)
        steps.append(len(steps) + 1)
        if len(steps) == 3:
            loss = loss * float("nan")
        return loss, {**parts, "loss": loss.detach()}

    trainer.model.training_loss = loss_not_finite_at_step_three
    with pytest.raises(FloatingPointError, match="non-finite loss .* in epoch 1, steps 3-4"):
        trainer.fit()
    assert len(steps) == 4  # read once per interval of --log-every steps, not at every step


def test_igrsr_train_nproc_2_trains_a_run_once_and_reuses_it(tmp_path):
    """The command line end to end on two ranks: one run-directory lock for all of them (rank
    0's), one results.json, and a second command reuses the finished run."""
    import json
    import subprocess
    import sys

    data = tmp_path / "tiny.txt"
    split = small_split()
    data.write_text("".join(f"{user + 1} {' '.join(map(str, items))}\n" for user, items in enumerate(split.train)))
    command = [sys.executable, "-m", "igrsr", "train", "--data", str(data), "--model", "sasrec", "--epochs", "1",
               "--d-model", "16", "--num-layers", "1", "--max-len", "8", "--out", str(tmp_path / "runs"),
               "--nproc", "2", "--no-progress"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    (results,) = (tmp_path / "runs").glob("*/sasrec-*/results.json")
    assert json.loads(results.read_text())["epochs_run"] == 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "reusing the finished run" in again.stdout
