"""Nothing lost, nothing silently wrong: run-directory locks, interrupted writes, resumes with
other options, option values that would fail late, and the ops' guards against bad arguments."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_cli_data import one_line_error

from igrsr.cli import main
from igrsr.data import leave_one_out, make_synthetic
from igrsr.ops import causal_attention, info_nce, intent_cross_attention
from igrsr.train import TrainConfig, make_spec, train_model
from igrsr.train.checkpoint import save_json
from igrsr.train.rundir import RunBusyError, differences, hold_run_dir

REPOSITORY = Path(__file__).resolve().parents[1]
# A small SASRec on the embedded synthetic data: about a second per command.
TINY = ["--model", "sasrec", "--d-model", "8", "--max-len", "10", "--num-layers", "1", "--no-progress"]
TINY_OPTIONS = dict(d_model=8, max_len=10, num_layers=1, num_heads=1)


def train_argv(out: Path, *extra: str) -> list:
    return ["train", "--out", str(out), *TINY, "--epochs", "1", *extra]


def only_run_dir(out: Path) -> Path:
    (run_dir,) = (out / "synthetic").glob("sasrec-*")
    return run_dir


def wait_for(condition, process: subprocess.Popen, what: str, limit: float = 120.0) -> None:
    """Poll until ``condition()`` holds; fail if the process ended first or ``limit`` passes."""
    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the training ended before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {limit:.0f} s")
        time.sleep(0.05)


@pytest.fixture
def training_in_progress(tmp_path):
    """An ``igrsr train`` of many epochs in a subprocess, once it has written its first
    ``last.pt``; killed with SIGKILL at the end (or earlier by the test)."""
    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "igrsr", *train_argv(out)[:-2], "--epochs", "100000", "--patience", "100000"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        argv, cwd=REPOSITORY, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: list(out.glob("synthetic/sasrec-*/last.pt")), process, "first last.pt")
        yield out, process
    finally:
        process.kill()
        process.wait()


def test_a_second_training_on_a_run_in_progress_refuses_naming_the_holder(training_in_progress, capsys):
    out, process = training_in_progress
    run_dir = only_run_dir(out)
    for extra in ([], ["--fresh"], ["--resume"]):
        error = one_line_error(capsys, *train_argv(out)[:-2], "--epochs", "100000", "--patience", "100000", *extra)
        assert f"{run_dir} is in use: pid {process.pid} on " in error and " since " in error, error
    assert process.poll() is None  # the first training goes on
    process.send_signal(signal.SIGKILL)
    process.wait()
    with hold_run_dir(run_dir):  # the kernel released the killed holder's lock: nothing stale
        pass


def test_the_lock_refuses_a_second_holder_and_passes_on_after_release(tmp_path):
    with hold_run_dir(tmp_path):
        with pytest.raises(RunBusyError, match=f"pid {os.getpid()} on "):
            with hold_run_dir(tmp_path):
                pass
    with hold_run_dir(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / ".lock").read_text()
    assert (tmp_path / ".lock").read_text() == ""


@pytest.fixture(scope="module")
def tiny():
    data = make_synthetic(num_users=60, num_items=40, seq_len=(5, 8), seed=1)
    return data, leave_one_out(data)


def tiny_spec(**train):
    return make_spec("sasrec", TINY_OPTIONS, TrainConfig(**{"epochs": 1, "progress": False, "device": "cpu", **train}))


def test_a_run_start_removes_temporary_files_of_killed_writes(tmp_path, tiny, capsys):
    (data, split), spec = tiny, tiny_spec()
    train_model(spec, data, split, tmp_path)
    run_dir = spec.run_dir(tmp_path, data)
    stale = [run_dir / ".best.pt.k9x2_a.tmp", run_dir / ".results.json.0q1w2e.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    train_model(spec, data, split, tmp_path, fresh=True)
    assert not any(path.exists() for path in stale)
    assert "removed 2 temporary file(s) of an interrupted write" in capsys.readouterr().out


def test_an_interrupted_fresh_retraining_leaves_no_old_results_over_new_checkpoints(tmp_path, tiny, monkeypatch):
    (data, split), spec = tiny, tiny_spec()
    train_model(spec, data, split, tmp_path)
    run_dir = spec.run_dir(tmp_path, data)

    def killed(self, resume=False):
        raise KeyboardInterrupt

    monkeypatch.setattr("igrsr.train.runs.Trainer.fit", killed)
    with pytest.raises(KeyboardInterrupt):
        train_model(spec, data, split, tmp_path, fresh=True)
    assert not any((run_dir / name).exists() for name in ("results.json", "best.pt", "last.pt"))
    assert (run_dir / "run.json").exists()  # an unfinished run, as --resume finds it


def test_resume_with_other_options_names_them_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(train_argv(out)) == 0
    run_dir = only_run_dir(out)
    (run_dir / "results.json").unlink()  # interrupted after its last epoch's last.pt
    capsys.readouterr()
    error = one_line_error(capsys, *train_argv(out, "--resume", "--lr", "0.01", "--dropout", "0.2"))
    assert f"the interrupted run {run_dir} differs in" in error
    assert "--dropout 0.5 there, 0.2 here" in error and "--lr 0.003 there, 0.01 here" in error
    assert "--resume" in error and [only_run_dir(out)] == [run_dir]  # no new run started
    assert main(train_argv(out, "--resume")) == 0
    assert "resuming sasrec after epoch 1" in capsys.readouterr().out


def test_differences_name_stage_two_and_stage_one_options():
    ours = {
        "model": "igrsr",
        "train": {"lr": 1e-3},
        "config": {"num_intents": 4},
        "backbone": {"config": {"d_model": 64}},
    }
    theirs = {
        "model": "igrsr",
        "train": {"lr": 3e-3},
        "config": {"num_intents": 2},
        "backbone": {"config": {"d_model": 32}},
    }
    assert differences("igrsr", theirs, ours) == [
        "--d-model (its stage 1) 32 there, 64 here",
        "--num-intents 2 there, 4 here",
        "--stage2-lr/--lr 0.003 there, 0.001 here",
    ]


BAD_OPTIONS = [  # command-line words, the start of the one-line error after "igrsr <command>: error: "
    (["train", "--model", "igrsr", "--num-intents", "17"], "--num-intents must be in [1, 16], got 17"),
    (["train", "--eval-batch-size", "0"], "--eval-batch-size must be >= 1, got 0"),
    (["train", "--d-model", "0"], "--d-model must be >= 1, got 0"),
    (["train", "--lr", "inf"], "--lr must be a finite number, got inf"),
    (["train", "--lr", "1e300"], "--lr must be a finite float32 number"),
    (["train", "--weight-decay", "1000"], "--weight-decay times the learning rate must be < 1"),
    (["train", "--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    (["train", "--model", "igrsr", "--temperature", "1e-50"], "--temperature must be >= 2.93874e-39, got 1e-50"),
    (["train", "--model", "rearec-erl", "--reasoning-temperature", "1e-40"], "--reasoning-temperature must be >="),
    (["train", "--model", "lightrec", "--codebook-temperature", "0"], "--codebook-temperature must be >="),
    (["train", "--model", "igrsr", "--cl-weight", "1e39"], "--cl-weight must be a finite float32 number"),
    (["train", "--threads", "0"], "--threads must be >= 1, got 0"),
    (
        ["train", "--model", "sasrec", "--backbone-run", "runs/x"],
        "--backbone-run: no model of this command trains over",
    ),
    (
        ["train", "--device", f"cuda:{torch.cuda.device_count()}"],
        f"--device cuda:{torch.cuda.device_count()}: this machine has",
    ),
    (["study", "--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["study", "--users", "0"], "--users must be >= 1, got 0"),
    (["study", "--noise-seed", "-3"], "--noise-seed must be in [0, 4294967295], got -3"),
    (["study", "--intents", "1,17"], "--num-intents must be in [1, 16], got 17"),
    (["study", "--prefixes", "-1"], "--num-prefix must be >= 0, got -1"),
    (["study", "--tune-lr", "0.001,1e300"], "--lr must be a finite float32 number"),
    (["study", "--seed", "4294967295", "--seeds", "2"], "--seed must be in [0, 4294967295], got 4294967296"),
]


@pytest.mark.parametrize("argv, message", BAD_OPTIONS, ids=[" ".join(argv) for argv, _ in BAD_OPTIONS])
def test_every_bad_option_fails_before_anything_trains(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    error = one_line_error(capsys, *argv, "--out", str(out))
    assert error.startswith(f"igrsr {argv[0]}: error: {message}"), error
    assert not out.exists()


def test_a_diverging_training_is_one_line(tmp_path, capsys, monkeypatch):
    def diverged(self):
        raise FloatingPointError("sasrec: non-finite loss {'loss': nan} at epoch 1")

    monkeypatch.setattr("igrsr.train.trainer.Trainer._train_one_epoch", diverged)
    error = one_line_error(capsys, *train_argv(tmp_path))
    assert error.endswith(
        "at epoch 1: the training diverged; a lower --lr (or --stage2-lr) or other options may keep it finite"
    )


@pytest.mark.parametrize(
    "error", [MemoryError(), torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")]
)
def test_running_out_of_memory_is_one_line_with_what_to_lower(tmp_path, capsys, monkeypatch, error):
    def too_big(self):
        raise error

    monkeypatch.setattr("igrsr.train.trainer.Trainer._train_one_epoch", too_big)
    message = one_line_error(capsys, *train_argv(tmp_path))
    assert message.startswith(
        f"igrsr train: error: out of memory ({str(error) or 'MemoryError'}); smaller --batch-size"
    )


def test_a_device_this_machine_lacks_is_one_line_before_anything_is_read(tmp_path, capsys):
    missing = f"cuda:{torch.cuda.device_count()}"
    for argv in (["recommend", str(tmp_path / "run"), "--out", str(tmp_path / "top.csv")], ["evaluate", str(tmp_path)]):
        error = one_line_error(capsys, *argv, "--device", missing)
        expected = f"--device {missing}: this machine has {torch.cuda.device_count()} CUDA device(s) visible to torch"
        assert error == f"igrsr {argv[0]}: error: {expected}"


def test_a_file_that_cannot_be_written_is_named_not_its_temporary(tmp_path, monkeypatch):
    def disk_full(dir, prefix, suffix):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(dir) / f"{prefix}x1{suffix}"))

    monkeypatch.setattr("igrsr.train.checkpoint.tempfile.mkstemp", disk_full)
    with pytest.raises(OSError) as error:
        save_json({}, tmp_path / "results.json")
    assert error.value.filename == str(tmp_path / "results.json") and error.value.errno == errno.ENOSPC


def test_migrate_of_a_missing_path_is_an_error(tmp_path, capsys):
    error = one_line_error(capsys, "migrate", str(tmp_path / "gone"))
    assert error == f"igrsr migrate: error: {tmp_path / 'gone'}: No such file or directory"


# --- ops ------------------------------------------------------------------------------------


def test_a_head_dim_of_zero_is_a_value_error_naming_q():
    empty = torch.zeros(2, 2, 5, 0)
    with pytest.raises(ValueError, match=r"q must have a head dim \(last dimension\) >= 1"):
        causal_attention(empty, empty, empty)
    with pytest.raises(ValueError, match=r"q must have a head dim \(last dimension\) >= 1"):
        intent_cross_attention(empty, torch.zeros(2, 2, 3, 0), torch.zeros(2, 2, 3, 0))


@pytest.mark.parametrize("temperature", [1e-50, 1e-39])
def test_a_temperature_whose_inverse_overflows_is_refused(temperature):
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match=f"temperature must be at least 2.939e-39 .*got {temperature!r}"):
        info_nce(z, z.clone(), temperature=temperature, backend="reference")


def test_a_temperature_whose_inverse_is_finite_is_accepted():
    z = torch.randn(4, 8)
    assert info_nce(z, z.clone(), temperature=3e-39, backend="reference").shape == ()


def compiled_ops():
    from igrsr.ops import extension

    if extension.load_error() is not None:
        pytest.skip(f"igrsr._C is not available: {extension.load_error()}")
    return torch.ops.igrsr


@pytest.mark.parametrize("meta", ["z1", "z2", "group_ids", "row_mask"])
def test_the_compiled_forward_refuses_a_meta_tensor_among_cpu_ones(meta):
    ops = compiled_ops()
    inputs = {
        "z1": torch.randn(4, 8), "z2": torch.randn(4, 8),
        "group_ids": torch.arange(4), "row_mask": torch.ones(4, dtype=torch.bool),
    }  # fmt: skip
    inputs[meta] = inputs[meta].to("meta")
    with pytest.raises(ValueError, match=" is on (meta|cpu) but z1 is on (cpu|meta)"):
        ops.info_nce_forward(inputs["z1"], inputs["z2"], 0.1, True, True, inputs["group_ids"], inputs["row_mask"])


def test_the_compiled_backward_refuses_a_meta_tensor_among_cpu_ones():
    ops = compiled_ops()
    z, rows = torch.randn(4, 8), torch.ones(4)
    with pytest.raises(ValueError, match="lse_cols is on meta but z1 is on cpu"):
        ops.info_nce_backward(rows, z, z, rows, rows.to("meta"), 0.1, True, True, None, None)
