"""``igrsr export``: the exported scorer, loaded in a fresh process without igrsr, gives the
trained model's own top-K on real histories."""

import json
import subprocess
import sys

import pytest
import torch

from igrsr.cli import main
from igrsr.data import leave_one_out, pad_left, reload_data
from igrsr.export import ONNX, onnx_available
from igrsr.train.runs import load_best, run_description

TINY = ["--epochs", "1", "--no-progress", "--d-model", "16", "--num-layers", "1", "--num-heads", "1",
        "--max-len", "12", "--batch-size", "64"]  # fmt: skip
K = 7

# Loads the program with torch alone (igrsr is never imported) and scores the histories saved
# by the test: argv = export folder, inputs file, outputs file.
FRESH_PROCESS = """
import sys
import torch
program = torch.export.load(sys.argv[1] + "/scorer.pt2").module()
inputs = torch.load(sys.argv[2])
items, scores = program(*inputs)
assert not any(name.startswith("igrsr") for name in sys.modules), "the scorer needed igrsr"
torch.save({"items": items, "scores": scores}, sys.argv[3])
"""


def log_with_string_ids(path):
    """A header-less log: string user and item ids, timestamps; 60 users of 6 to 14 items."""
    lines = []
    for user in range(60):
        for step in range(6 + user % 9):
            item = (user * 5 + step * step) % 37
            lines.append(f"user-{user:03d}::sku{item:02d}::{100 + step}\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A SASRec run and a (personalized) SSE-PT run on the log, by the command line."""
    tmp_path = tmp_path_factory.mktemp("export")
    data = log_with_string_ids(tmp_path / "log.dat")
    out = tmp_path / "runs"
    reader = ["--data", str(data), "--columns", "user,item,timestamp"]
    assert main(["train", *reader, "--model", "sasrec,ssept", "--out", str(out), *TINY]) == 0
    return {path.name.split("-")[0]: path for path in (out / "log").iterdir()}


def model_top_k(run_dir, history, users, exclude_history=True):
    """The trained model's own top-K: its scores, padding (and the history) left out."""
    data = reload_data(run_description(run_dir)["data"]["source"])
    model, _ = load_best(run_dir, data, leave_one_out(data), "cpu")
    with torch.no_grad():
        scores = model.eval().score(history, users).float()
    scores[:, 0] = float("-inf")
    if exclude_history:
        for row, items in enumerate(history):
            scores[row, items] = float("-inf")
    return scores.topk(K, dim=1)


@pytest.mark.parametrize("model", ["sasrec", "ssept"])
def test_the_export_loads_without_igrsr_and_gives_the_models_top_k(runs, tmp_path, model):
    run_dir, out = runs[model], tmp_path / "scorer"
    assert main(["export", str(run_dir), "--out", str(out), "--k", str(K)]) == 0
    about = json.loads((out / "scorer.json").read_text())
    assert about["model"] == model and about["k"] == K and about["max_len"] == 12
    assert [spec["name"] for spec in about["inputs"]] == (["history", "users"] if model == "ssept" else ["history"])
    assert (out / ONNX).exists() == onnx_available()

    # Every user's real test history, a batch of another size than the export was traced with.
    data = reload_data(run_description(run_dir)["data"]["source"])
    split = leave_one_out(data)
    history = pad_left(split.test_history, 12)
    users = torch.arange(split.num_users)
    inputs = (history, users) if model == "ssept" else (history,)
    torch.save(inputs, tmp_path / "inputs.pt")
    fresh = [sys.executable, "-c", FRESH_PROCESS, str(out), str(tmp_path / "inputs.pt"), str(tmp_path / "outputs.pt")]
    result = subprocess.run(fresh, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    exported = torch.load(tmp_path / "outputs.pt")
    expected_scores, expected_items = model_top_k(run_dir, history, users)
    assert torch.equal(exported["items"], expected_items)
    torch.testing.assert_close(exported["scores"], expected_scores)
    assert not (exported["items"] == 0).any()

    # The id maps give the file's own ids back.
    ids = json.loads((out / "ids.json").read_text())
    assert ids["items"][0] is None and ids["items"][1:] == data.item_ids[1:].tolist()
    assert ids["items"][1].startswith("sku") and ids["users"][0] == "user-000"
    assert ids["users"] == [data.user_ids[index] for index in split.user_index]


def test_export_replaces_an_earlier_export_and_refuses_other_folders(runs, tmp_path, capsys):
    out = tmp_path / "scorer"
    assert main(["export", str(runs["sasrec"]), "--out", str(out), "--k", "3"]) == 0
    assert main(["export", str(runs["sasrec"]), "--out", str(out), "--k", "4", "--include-history"]) == 0
    about = json.loads((out / "scorer.json").read_text())
    assert about["k"] == 4 and not about["exclude_history"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scorer"]  # no staging folder left
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["export", str(runs["sasrec"]), "--out", str(other)]) == 2
    assert "is not an earlier export" in capsys.readouterr().err and (other / "notes.txt").exists()
    assert main(["export", str(runs["sasrec"]), "--out", str(tmp_path / "new"), "--k", "0"]) == 2
    assert "--k must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.skipif(not onnx_available(), reason="needs the onnx and onnxscript packages")
def test_the_onnx_scorer_gives_the_same_top_k(runs, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "scorer"
    assert main(["export", str(runs["sasrec"]), "--out", str(out), "--k", str(K)]) == 0
    data = reload_data(run_description(runs["sasrec"])["data"]["source"])
    history = pad_left(leave_one_out(data).test_history, 12)
    session = onnxruntime.InferenceSession(str(out / ONNX))
    items, scores = session.run(["items", "scores"], {"history": history.numpy()})
    expected_scores, expected_items = model_top_k(runs["sasrec"], history, None)
    assert torch.equal(torch.from_numpy(items), expected_items)
    torch.testing.assert_close(torch.from_numpy(scores), expected_scores, rtol=1e-4, atol=1e-4)
