"""``igrsr recommend``: every user's top-K from a run trained on a MovieLens-shaped u.data."""

import csv
import importlib.util

import numpy as np
import pytest
import torch

from igrsr.cli import main
from igrsr.data import leave_one_out, pad_left, reload_data
from igrsr.eval import SeenItems, streamed_ranks
from igrsr.train.runs import load_best, run_description

K = 10
USERS = 300
TINY = ["--epochs", "1", "--no-progress", "--d-model", "16", "--num-layers", "1", "--num-heads", "1",
        "--max-len", "12", "--batch-size", "128"]  # fmt: skip


def movielens_u_data(path, users=USERS, items=400, seed=0):
    """u.data's shape: tab-separated ``user item rating timestamp``, ids from 1 with gaps
    (item ids times 3), 20 to 60 ratings a user in shuffled line order."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, users + 1):
        count = rng.integers(20, 61)
        chosen = rng.choice(items, size=count, replace=False) + 1
        for step, item in enumerate(chosen):
            lines.append(f"{user}\t{item * 3}\t{rng.integers(1, 6)}\t{881250949 + 1000 * user + step}\n")
    rng.shuffle(lines)
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("recommend")
    data = movielens_u_data(tmp_path / "u.data")
    out = tmp_path / "runs"
    reader = ["--data", str(data), "--columns", "user,item,rating,timestamp"]
    assert main(["train", *reader, "--model", "sasrec", "--out", str(out), *TINY]) == 0
    (run_dir,) = (out / "u").iterdir()
    return run_dir, data


def read_rows(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {user: [row for row in rows if row["user"] == user] for user in dict.fromkeys(row["user"] for row in rows)}


def model_recommendations(run_dir, users_in_file):
    """The trained model's ``recommend`` on each user's whole sequence, in the file's ids."""
    data = reload_data(run_description(run_dir)["data"]["source"])
    split = leave_one_out(data)
    model, _ = load_best(run_dir, data, split, "cpu")
    index = {str(data.user_ids[u]): u for u in split.user_index.tolist()}
    sequences = [data.sequences[index[user]] for user in users_in_file]
    items, scores = model.recommend(pad_left(sequences, model.max_len), K, exclude=pad_left(sequences, 100))
    return data, sequences, data.item_ids[items.numpy()], scores


def test_every_user_gets_k_unseen_items_in_the_files_ids_as_the_model_recommends(run, tmp_path):
    run_dir, data_path = run
    out = tmp_path / "top.csv"
    assert main(["recommend", str(run_dir), "--data", str(data_path), "--columns", "user,item,rating,timestamp",
                 "--k", str(K), "--out", str(out), "--chunk-size", "77", "--no-progress"]) == 0  # fmt: skip
    rows = read_rows(out)
    assert len(rows) == USERS and set(rows) == {str(user) for user in range(1, USERS + 1)}
    data, sequences, items, scores = model_recommendations(run_dir, list(rows))
    file_items = {int(line.split("\t")[1]) for line in data_path.read_text().splitlines()}
    for user_rows, sequence, expected_items, expected_scores in zip(rows.values(), sequences, items, scores):
        assert [int(row["rank"]) for row in user_rows] == list(range(1, K + 1))
        recommended = [int(row["item"]) for row in user_rows]
        assert set(recommended) <= file_items and not set(recommended) & set(data.item_ids[sequence].tolist())
        assert recommended == expected_items.tolist()
        written = np.array([row["score"] for row in user_rows], dtype=np.float32)
        assert (np.diff(written) <= 0).all() and np.array_equal(written, expected_scores.numpy())


def test_listed_users_keep_seen_and_parquet(run, tmp_path):
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    run_dir, _ = run
    users = tmp_path / "users.txt"
    users.write_text("17\n\n3\n")
    out = tmp_path / "top.parquet"
    assert main(["recommend", str(run_dir), "--users", str(users), "--k", "5", "--keep-seen", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    table = pyarrow_parquet.read_table(out).to_pydict()
    assert table["user"] == [17] * 5 + [3] * 5 and table["rank"] == [1, 2, 3, 4, 5] * 2
    data = reload_data(run_description(run_dir)["data"]["source"])
    split = leave_one_out(data)
    model, _ = load_best(run_dir, data, split, "cpu")
    index = {data.user_ids[u]: u for u in split.user_index.tolist()}
    history = pad_left([data.sequences[index[17]], data.sequences[index[3]]], model.max_len)
    items, scores = model.recommend(history, 5, exclude=None)
    assert table["item"] == data.item_ids[items.flatten().numpy()].tolist()
    assert np.array_equal(np.array(table["score"], dtype=np.float32), scores.flatten().numpy())


def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, capsys):
    run_dir, _ = run
    unknown = tmp_path / "users.txt"
    unknown.write_text("3\nnobody\n")
    cases = [
        (["--users", str(unknown), "--out", str(tmp_path / "a.csv")], f"{unknown}:2: unknown user id 'nobody'"),
        (["--out", str(tmp_path / "a.json")], "must be .csv or .parquet"),
        (["--k", "0", "--out", str(tmp_path / "a.csv")], "--k must be >= 1"),
        (["--users", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "a.csv")], "no such file"),
    ]
    for options, message in cases:
        assert main(["recommend", str(run_dir), "--no-progress", *options]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and len(error.splitlines()) == 1
    assert not [path.name for path in tmp_path.iterdir() if path.name != "users.txt"]


def test_parquet_without_pyarrow_is_named(run, tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else find_spec(name, *a)
    )
    assert main(["recommend", str(run[0]), "--out", str(tmp_path / "a.parquet")]) == 2
    assert "needs pyarrow" in capsys.readouterr().err


def test_recommend_scores_equal_ranking_order(run):
    """The first recommendation of a user ranks 0 when taken as that user's target."""
    run_dir, _ = run
    data = reload_data(run_description(run_dir)["data"]["source"])
    model, _ = load_best(run_dir, data, leave_one_out(data), "cpu")
    history = torch.tensor([[0, 0, 1, 2, 3]])
    items, _ = model.recommend(history, 1)
    seen = SeenItems.from_histories([np.array([1, 2, 3])], torch.device("cpu"))
    with torch.no_grad():
        assert streamed_ranks(model.eval().item_scores(history), items[:, 0], seen).tolist() == [0]
