"""Training harness: end-to-end runs, resume, atomic files, the command line."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from igrsr import IGRSR, SASRec
from igrsr.cli import main
from igrsr.data import leave_one_out, make_synthetic
from igrsr.eval import evaluate
from igrsr.train import TrainConfig, Trainer, load_data, make_spec, train_model
from igrsr.train.checkpoint import save_json
from igrsr.train.runs import load_trained

SMALL = dict(max_len=20, d_model=32, num_layers=1, num_heads=2, dropout=0.1)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(make_synthetic(num_users=300, num_items=120, seq_len=(8, 16), seed=3))


def popularity_ndcg(split) -> float:
    counts = torch.zeros(split.num_items + 1)
    for sequence in split.train:
        counts.index_add_(0, torch.from_numpy(sequence), torch.ones(len(sequence)))
    return evaluate(
        lambda history, users: counts.expand(len(history), -1), split.test_history, split.test_target,
        split.num_items, max_len=20,
    )["NDCG@10"]  # fmt: skip


def config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 8, "batch_size": 32, "lr": 5e-3, "patience": 8, "progress": False, **overrides})


def test_sasrec_and_igrsr_train_end_to_end_and_beat_popularity(split, tmp_path):
    popularity = popularity_ndcg(split)
    sasrec = SASRec(split.num_items, **SMALL)
    sasrec_result = Trainer(sasrec, split, config(), tmp_path / "sasrec", "sasrec").fit()
    assert sasrec_result["test"]["NDCG@10"] > popularity
    igrsr = IGRSR(sasrec, num_layers=1, num_heads=2, dropout=0.2, num_intents=2, num_prefix=2)
    igrsr_result = Trainer(igrsr, split, config(epochs=2), tmp_path / "igrsr", "igrsr").fit()
    assert igrsr_result["test"]["NDCG@10"] > popularity
    assert (tmp_path / "igrsr" / "best.pt").exists() and (tmp_path / "igrsr" / "curves.png").exists()
    assert igrsr_result["epochs_run"] == 2 and len(igrsr_result["history"]) == 2


def test_resume_continues_exactly_where_the_run_stopped(split, tmp_path):
    def trainer(epochs, directory):
        torch.manual_seed(0)
        return Trainer(SASRec(split.num_items, **SMALL), split, config(epochs=epochs), directory, "sasrec")

    uninterrupted = trainer(3, tmp_path / "straight").fit()
    trainer(2, tmp_path / "stopped").fit()
    resumed = trainer(3, tmp_path / "stopped").fit(resume=True)
    assert resumed["epochs_run"] == 3
    straight_losses = [row["train_loss"] for row in uninterrupted["history"]]
    resumed_losses = [row["train_loss"] for row in resumed["history"]]
    np.testing.assert_allclose(resumed_losses, straight_losses, rtol=1e-5)
    assert resumed["test"] == pytest.approx(uninterrupted["test"], rel=1e-5)


def test_the_progress_bar_moves_every_step_between_loss_reads(split, tmp_path, monkeypatch):
    """With log_every beyond the epoch's steps, the bar still advances one step at a time (a
    slow step shows before the loss is next read) and ends at the epoch's step count."""
    import igrsr.train.trainer as trainer_module

    updates = []

    class RecordingBar(trainer_module.tqdm):
        def update(self, n=1):
            updates.append(n)
            return super().update(n)

    monkeypatch.setattr(trainer_module, "tqdm", RecordingBar)
    trainer = Trainer(
        SASRec(split.num_items, **SMALL), split, config(epochs=1, progress=True, log_every=1000), tmp_path, "sasrec"
    )
    steps = len(trainer._epoch_batches())
    trainer.fit()
    assert steps > 1 and updates == [1] * steps


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.json"
    save_json({"done": 1}, path)

    class Unserializable:
        def __str__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_json({"done": Unserializable()}, path)
    assert json.loads(path.read_text()) == {"done": 1}
    assert os.listdir(tmp_path) == ["results.json"]


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0.0)


def write_sequences(path, users=150, seed=0):
    data = make_synthetic(num_users=users, num_items=60, seq_len=(6, 12), seed=seed)
    path.write_text("".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(data.sequences)))
    return path


def test_command_line_trains_reuses_stage_one_and_writes_results(tmp_path, capsys):
    data = write_sequences(tmp_path / "tiny.txt")
    common = ["--data", str(data), "--out", str(tmp_path / "runs"), "--epochs", "1", "--no-progress",
              "--d-model", "16", "--num-layers", "1", "--max-len", "10", "--batch-size", "64"]  # fmt: skip
    assert main(["train", "--model", "sasrec", *common]) == 0
    assert main(["train", "--model", "igrsr", *common, "--num-intents", "2", "--num-prefix", "2"]) == 0
    output = capsys.readouterr().out
    assert "sasrec: reusing the finished run" in output
    results = sorted((tmp_path / "runs" / "tiny").glob("*/results.json"))
    assert [p.parent.name.split("-")[0] for p in results] == ["igrsr", "sasrec"]
    igrsr_result = json.loads(results[0].read_text())
    assert igrsr_result["backbone_run"] == str(results[1].parent)
    assert set(igrsr_result["test"]) >= {"HR@10", "NDCG@10", "MRR@10", "HR@20"}
    assert igrsr_result["config"]["num_intents"] == 2 and igrsr_result["schema"] == 2


def fails(capsys, *args) -> str:
    """The one-line error of a command that must fail with exit status 2."""
    assert main(list(args)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error


def test_command_line_rejects_unknown_models(tmp_path, capsys):
    assert "unknown model" in fails(
        capsys, "train", "--model", "gru4rec", "--data", str(write_sequences(tmp_path / "d.txt"))
    )
    assert "--models: no model given" in fails(capsys, "study", "--models", " , ", "--out", str(tmp_path / "study"))


def test_backbone_run_option_picks_the_stage_one_and_checks_its_data(tmp_path, capsys):
    data = write_sequences(tmp_path / "tiny.txt")
    out = tmp_path / "runs"
    common = ["--out", str(out), "--epochs", "1", "--no-progress", "--d-model", "16", "--num-layers", "1",
              "--max-len", "10", "--batch-size", "64"]  # fmt: skip
    assert main(["train", "--data", str(data), "--model", "sasrec", *common]) == 0
    stage_one = next((out / "tiny").glob("sasrec-*"))
    # Another training budget for stage 2, over the existing stage 1: nothing is retrained.
    args = ["train", "--data", str(data), "--model", "igrsr", *common, "--patience", "3", "--backbone-run"]
    assert main([*args, str(stage_one), "--num-intents", "2"]) == 0
    assert len(list((out / "tiny").glob("sasrec-*"))) == 1
    result = json.loads(next((out / "tiny").glob("igrsr-*/results.json")).read_text())
    assert result["backbone_run"] == str(stage_one)
    other = write_sequences(tmp_path / "other.txt", seed=1)
    assert "other data" in fails(capsys, "train", "--data", str(other), "--model", "igrsr", *common,
                                 "--backbone-run", str(stage_one))  # fmt: skip


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    data = make_synthetic(num_users=120, num_items=60, seq_len=(6, 10), seed=2)
    split = leave_one_out(data)
    options = dict(max_len=10, d_model=16, num_layers=1, num_heads=2, dropout=0.1)

    def run(seed, caller_state):
        torch.manual_seed(caller_state)  # whatever the caller's RNG state, the seed decides
        spec = make_spec("sasrec", options, config(epochs=2, seed=seed))
        return train_model(spec, data, split, tmp_path / str(caller_state), fresh=True)["history"]

    first, again, other = run(7, caller_state=1), run(7, caller_state=2), run(8, caller_state=3)
    assert [row["train_loss"] for row in first] == [row["train_loss"] for row in again]
    assert [row["train_loss"] for row in first] != [row["train_loss"] for row in other]


def test_evaluate_scores_finished_and_interrupted_runs_from_their_best_checkpoint(tmp_path, capsys):
    data = write_sequences(tmp_path / "tiny.txt")
    common = ["--data", str(data), "--out", str(tmp_path / "runs"), "--epochs", "2", "--no-progress",
              "--d-model", "16", "--num-layers", "1", "--max-len", "10", "--batch-size", "64"]  # fmt: skip
    assert main(["train", "--model", "sasrec,igrsr", *common, "--num-intents", "2", "--num-prefix", "2"]) == 0
    runs = {p.name.split("-")[0]: p for p in (tmp_path / "runs" / "tiny").iterdir()}
    recorded = {name: json.loads((run / "results.json").read_text()) for name, run in runs.items()}
    (runs["igrsr"] / "results.json").unlink()  # as if interrupted after its best epoch: run.json says what it is
    with pytest.raises(FileNotFoundError, match="no finished run"):
        load_trained(runs["igrsr"], *_data_and_split(data), "cpu")

    report = tmp_path / "evaluated.json"
    assert main(["evaluate", str(runs["sasrec"]), str(runs["igrsr"]), "--data", str(data), "--json", str(report)]) == 0
    assert "finished" in capsys.readouterr().out
    evaluated = {row["model"]: row for row in json.loads(report.read_text())}
    assert evaluated["sasrec"]["finished"] and not evaluated["igrsr"]["finished"]
    for name, result in recorded.items():
        assert evaluated[name]["best_epoch"] == result["best_epoch"]
        assert evaluated[name]["test"] == pytest.approx(result["test"], abs=1e-6)

    # User by user against SASRec: the gain is that of the means, a run against itself gains nothing.
    versus = ["--data", str(data), "--versus", str(runs["sasrec"]), "--metric", "HR@10", "--json", str(report)]
    assert main(["evaluate", str(runs["igrsr"]), str(runs["sasrec"]), *versus]) == 0
    assert "HR@10 user by user" in capsys.readouterr().out
    igrsr_row, sasrec_row = json.loads(report.read_text())
    expected = 100 * (recorded["igrsr"]["test"]["HR@10"] / recorded["sasrec"]["test"]["HR@10"] - 1)
    assert igrsr_row["paired"]["metric"] == "HR@10"
    assert igrsr_row["paired"]["users"] == recorded["igrsr"]["test"]["num_users"]
    assert igrsr_row["paired"]["gain_percent"] == pytest.approx(expected)
    low, high = igrsr_row["paired"]["ci95_percent"]
    assert low <= igrsr_row["paired"]["gain_percent"] <= high
    assert sasrec_row["paired"]["gain_percent"] == 0 and sasrec_row["paired"]["ci95_percent"] == [0, 0]
    assert "--metric" in fails(capsys, "evaluate", str(runs["sasrec"]), *versus[:-2], "--metric", "NDCG10")
    assert "not a run directory" in fails(capsys, "evaluate", str(tmp_path), "--data", str(data))
    other = write_sequences(tmp_path / "other.txt", seed=1)
    assert "other data" in fails(capsys, "evaluate", str(runs["sasrec"]), "--data", str(other))


def _data_and_split(path):
    data = load_data(str(path))
    return data, leave_one_out(data)


def test_the_run_key_covers_the_whole_resolved_config(tmp_path):
    data = make_synthetic(num_users=60, num_items=40, seq_len=(6, 30), seed=1)
    options = dict(max_len=5, d_model=16, num_layers=1, num_heads=2, dropout=0.1)
    spec = make_spec("sasrec", options, config(epochs=1))
    key = spec.key(data)
    assert key["config"] == {**SASRec.Config().to_dict(), **options} and key["schema"] == 2
    assert "device" not in key["train"] and key["train"]["epochs"] == 1  # runtime settings stay out
    # Giving a model its own default explicitly is the same run; any other value is another one.
    assert make_spec("sasrec", {**options, "loss": "ce"}, config(epochs=1)).run_dir(tmp_path, data) == spec.run_dir(
        tmp_path, data
    )
    assert make_spec("sasrec", options, config(epochs=1, device="cpu", progress=True)).key(data) == key
    every = make_spec("sasrec", options, config(epochs=1, every_window=True))
    split = leave_one_out(data)
    last, every = train_model(spec, data, split, tmp_path), train_model(every, data, split, tmp_path)
    assert last["run_dir"] != every["run_dir"] and every["train"]["every_window"]
    assert last["history"][0]["train_loss"] != every["history"][0]["train_loss"]


def test_a_revised_model_gets_new_runs_and_refuses_to_load_older_ones(monkeypatch, tmp_path):
    from dataclasses import replace

    from igrsr.models.registry import MODELS

    data = make_synthetic(num_users=20, num_items=40, seq_len=(6, 12), seed=1)
    split = leave_one_out(data)
    options = dict(max_len=5, d_model=16, num_layers=1, num_heads=2)
    first = make_spec("sasrec", options, config(epochs=1))
    old = train_model(first, data, split, tmp_path)
    assert old["revision"] == 1 and first.key(data)["revision"] == 1
    monkeypatch.setitem(MODELS, "sasrec", replace(MODELS["sasrec"], revision=2))
    revised = make_spec("sasrec", options, config(epochs=1))
    assert revised.key(data)["revision"] == 2 and revised.run_dir(tmp_path, data) != Path(old["run_dir"])
    with pytest.raises(ValueError, match="revision 1 of 'sasrec'"):
        load_trained(old["run_dir"], data, split, "cpu")


def test_a_finished_run_whose_best_checkpoint_was_replaced_is_refused(tmp_path):
    from igrsr.train.checkpoint import load_torch, save_torch

    data = make_synthetic(num_users=20, num_items=40, seq_len=(6, 12), seed=1)
    split = leave_one_out(data)
    options = dict(max_len=5, d_model=16, num_layers=1, num_heads=2)
    finished = train_model(make_spec("sasrec", options, config(epochs=2, patience=2)), data, split, tmp_path)
    best = Path(finished["run_dir"]) / "best.pt"
    checkpoint = load_torch(best)
    save_torch({**checkpoint, "epoch": finished["best_epoch"] + 1}, best)  # as if copied from another run
    with pytest.raises(ValueError, match="replaced after the run finished"):
        load_trained(finished["run_dir"], data, split, "cpu")
