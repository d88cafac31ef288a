"""igrsr.data: readers, remapping, leave-one-out, padding, training examples, synthetic data, noise."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from igrsr.data import (
    DataFormatError,
    PrefixExamples,
    SequenceExamples,
    inject_noise,
    leave_one_out,
    load_dataset,
    make_synthetic,
    pad_left,
    read_csv,
    read_recbole_inter,
    read_sequence_file,
)
from igrsr.data.synthetic import _World

BEAUTY = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "Beauty.txt"


def write(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def as_lists(sequences) -> list[list[int]]:
    return [sequence.tolist() for sequence in sequences]


# --- .txt sequence files ---------------------------------------------------------------------


def test_sequence_file_remaps_items_in_sorted_original_order(tmp_path):
    path = write(tmp_path, "toy.txt", "7 10 3 10\n\n2 7 42\n")
    data = read_sequence_file(path)
    assert data.name == "toy"
    assert data.user_ids == [7, 2]
    assert data.item_ids.tolist() == [0, 3, 7, 10, 42]
    assert as_lists(data.sequences) == [[3, 1, 3], [2, 4]]
    assert all(sequence.dtype == np.int64 for sequence in data.sequences)
    assert (data.num_users, data.num_items, data.num_interactions) == (2, 4, 5)
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[10, 3, 10], [7, 42]]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", None, "no interactions"),
        ("\n  \n", None, "no interactions"),
        ("1 2 3\n2 4 x5\n", 2, "'x5' is not an integer"),
        ("u1 2 3\n", 1, "'u1' is not an integer"),
        ("1 2 3\n\n2\n", 3, "user 2 has no items"),
        ("1 2 3\n2 3\n1 4\n", 3, "user 1 already appeared on line 1"),
    ],
)
def test_sequence_file_errors_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(DataFormatError, match=message) as error:
        read_sequence_file(path)
    location = f"{path}:{line}:" if line else f"{path}:"
    assert str(error.value).startswith(location)
    assert error.value.line == line


@pytest.mark.skipif(not BEAUTY.exists(), reason="shared data not present")
def test_beauty_has_the_published_size():
    data = load_dataset(BEAUTY)
    assert (data.num_users, data.num_items, data.num_interactions) == (22363, 12101, 198502)
    # Its ids are already 1..N, so the remapping keeps them.
    assert np.array_equal(data.item_ids, np.arange(data.num_items + 1))


# --- RecBole .inter --------------------------------------------------------------------------

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def test_recbole_sorts_by_time_with_stable_ties_and_numeric_ids(tmp_path):
    rows = [
        ("10", "9", "5", "300"),
        ("10", "10", "4", "100"),
        ("9", "7", "3", "50"),
        ("10", "2", "1", "300"),  # ties with the first row: stays after it
        ("9", "10", "2", "40"),
    ]
    path = write(tmp_path, "toy.inter", INTER_HEADER + "".join("\t".join(r) + "\n" for r in rows))
    data = read_recbole_inter(path)
    assert data.user_ids == [9, 10]  # numeric order: "9" before "10"
    assert data.item_ids.tolist() == [0, 2, 7, 9, 10]
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[10, 7], [10, 9, 2]]


def test_recbole_string_tokens_and_column_order(tmp_path):
    text = "timestamp:float\titem_id:token\tuser_id:token\n1\tb\talice\n3\ta\tbob\n2\tc\talice\n"
    data = read_recbole_inter(write(tmp_path, "toy.inter", text))
    assert data.user_ids == ["alice", "bob"]
    assert data.item_ids.tolist() == ["", "a", "b", "c"]
    assert as_lists(data.sequences) == [[2, 3], [1]]


def test_recbole_and_sequence_file_give_the_same_data(tmp_path):
    sequences = {1: [5, 3, 9], 2: [3, 12], 3: [9, 9, 5, 1]}
    txt = write(tmp_path, "same.txt", "".join(f"{u} {' '.join(map(str, s))}\n" for u, s in sequences.items()))
    inter_rows = [f"{u}\t{item}\t1\t{t}\n" for u, s in sequences.items() for t, item in enumerate(s)]
    inter = write(tmp_path, "same.inter", INTER_HEADER + "".join(reversed(inter_rows)))
    from_txt, from_inter = load_dataset(txt), load_dataset(inter)
    assert as_lists(from_txt.sequences) == as_lists(from_inter.sequences)
    assert from_txt.item_ids.tolist() == from_inter.item_ids.tolist()
    assert from_txt.user_ids == from_inter.user_ids


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", None, "empty file"),
        (INTER_HEADER, None, "no interactions"),
        (INTER_HEADER + "1\t2\t5\t10\n1\t3\t5\n", 3, "row has 3 fields but the header has 4"),
        ("user_id:token\titem_id:token\n1\t2\n", 1, "missing column 'timestamp'"),
        (INTER_HEADER + "1\t2\t5\tlater\n", 2, "timestamp 'later' is neither a number nor"),
        (INTER_HEADER + "1\t2\t5\t1\n1\t3\t5\tlater\n", 3, "timestamp 'later' is not a number"),
        (INTER_HEADER + "1\t2\t5\t1\n1\t\t5\t2\n", 3, "empty value in column 'item_id'"),
    ],
)
def test_recbole_errors_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "bad.inter", text)
    with pytest.raises(DataFormatError, match=message) as error:
        read_recbole_inter(path)
    assert error.value.line == line
    assert str(error.value).startswith(f"{path}:{line}:" if line else f"{path}:")


# --- CSV / TSV -------------------------------------------------------------------------------


def test_csv_with_header_sorts_by_time(tmp_path):
    path = write(tmp_path, "log.csv", "user,item,timestamp\nu1,i3,20\nu2,i1,5\nu1,i2,10\n")
    data = read_csv(path)
    assert data.user_ids == ["u1", "u2"]
    assert [data.item_ids[s].tolist() for s in data.sequences] == [["i2", "i3"], ["i1"]]


def test_tsv_custom_columns_and_iso_dates(tmp_path):
    text = "when\tcustomer\tproduct\n2024-01-02 10:00\t1\t30\n2024-01-01\t1\t20\n"
    path = write(tmp_path, "log.tsv", text)
    data = read_csv(path, user_col="customer", item_col="product", time_col="when")
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[20, 30]]


def test_csv_separator_sniffed_from_header_and_file_order_without_time(tmp_path):
    path = write(tmp_path, "log.dat", "user;item\n1;3\n1;1\n2;2\n")
    data = read_csv(path, time_col=None)
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[3, 1], [2]]


def test_csv_quoted_fields(tmp_path):
    path = write(tmp_path, "log.csv", 'user,item,timestamp\n1,"a, b",2\n1,c,1\n')
    assert read_csv(path).item_ids.tolist() == ["", "a, b", "c"]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", None, "empty file"),
        ("user,item,timestamp\n", None, "no interactions"),
        ("user,item,timestamp\n1,2,3\n\n1,2\n", 4, "row has 2 fields but the header has 3"),
        ("user,product,timestamp\n1,2,3\n", 1, "missing column 'item'"),
        ("user,item,timestamp\n1,2,3\n1,2,2024-01-01\n", 3, "is not a number"),
        ("user,item,timestamp\n1,2,2024-01-01\n1,3,soon\n", 3, "is not an ISO-8601 date"),
        ("user,item,timestamp\n1,2,3\n1,2,nan\n", 3, "is missing or infinite"),
        ("user,item,timestamp\n1,2,2024-01-01\n1,2,NaT\n", 3, "is missing or infinite"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataFormatError, match=message) as error:
        read_csv(path)
    assert error.value.line == line


def test_load_dataset_chooses_reader_by_extension(tmp_path):
    txt = write(tmp_path, "a.txt", "1 2 3\n")
    inter = write(tmp_path, "a.inter", INTER_HEADER + "1\t2\t1\t1\n1\t3\t1\t2\n")
    csv_file = write(tmp_path, "a.csv", "user,item,timestamp\n1,2,1\n1,3,2\n")
    tsv_file = write(tmp_path, "a.tsv", "user\titem\ttimestamp\n1\t2\t1\n1\t3\t2\n")
    for path in (txt, inter, csv_file, tsv_file):
        assert as_lists(load_dataset(path).sequences) == [[1, 2]]
    assert as_lists(load_dataset(write(tmp_path, "b.log", "1 2 3\n"), format="txt").sequences) == [[1, 2]]
    with pytest.raises(ValueError, match="unknown data format 'log'"):
        load_dataset(tmp_path / "b.log")


# --- leave-one-out ---------------------------------------------------------------------------


def toy_data(sequences):
    text = "".join(f"{u} {' '.join(map(str, s))}\n" for u, s in enumerate(sequences, start=1))
    return text


def test_leave_one_out_contents_and_skipped_users(tmp_path, capsys):
    data = read_sequence_file(write(tmp_path, "d.txt", toy_data([[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]])))
    split = leave_one_out(data)
    assert "skipped 1 users with fewer than 3 interactions" in capsys.readouterr().out
    assert split.skipped_users == 1
    assert split.user_index.tolist() == [0, 2]
    assert as_lists(split.train) == [[1, 2, 3], [8]]
    assert as_lists(split.valid_history) == [[1, 2, 3], [8]]
    assert split.valid_target.tolist() == [4, 9]
    assert as_lists(split.test_history) == [[1, 2, 3, 4], [8, 9]]
    assert split.test_target.tolist() == [5, 10]
    assert split.num_items == data.num_items == 10


def test_leave_one_out_prints_nothing_when_nobody_is_skipped(tmp_path, capsys):
    leave_one_out(read_sequence_file(write(tmp_path, "d.txt", toy_data([[1, 2, 3]]))))
    assert capsys.readouterr().out == ""


def test_leave_one_out_min_length_and_no_users_left(tmp_path, capsys):
    data = read_sequence_file(write(tmp_path, "d.txt", toy_data([[1, 2, 3, 4], [5, 6, 7]])))
    assert leave_one_out(data, min_length=4).skipped_users == 1
    with pytest.raises(ValueError, match="no user"):
        leave_one_out(data, min_length=5)
    with pytest.raises(ValueError, match="min_length"):
        leave_one_out(data, min_length=2)


# --- padding and training examples -----------------------------------------------------------


def test_pad_left_truncates_pads_and_handles_empty():
    padded = pad_left([np.array([1, 2, 3, 4, 5]), np.array([6, 7]), np.array([], dtype=np.int64)], max_len=3)
    assert padded.dtype == torch.long
    assert padded.tolist() == [[3, 4, 5], [0, 6, 7], [0, 0, 0]]


def test_prefix_examples_one_per_prefix():
    sequences = [np.array([1, 2, 3, 4]), np.array([5]), np.array([6, 7])]
    examples = PrefixExamples(sequences, max_len=2, user_ids=np.array([10, 11, 12]))
    assert len(examples) == sum(len(s) - 1 for s in sequences) == 4
    got = [(e["history"].tolist(), int(e["target"]), int(e["user"])) for e in examples]
    assert got == [
        ([0, 1], 2, 10),
        ([1, 2], 3, 10),
        ([2, 3], 4, 10),  # the prefix [1, 2, 3] keeps its last max_len items
        ([0, 6], 7, 12),
    ]
    example = examples[0]
    assert example["history"].dtype == example["target"].dtype == example["user"].dtype == torch.long
    assert example["target"].shape == example["user"].shape == ()


def test_prefix_examples_batch_with_default_collate():
    examples = PrefixExamples([np.arange(1, 8), np.arange(3, 6)], max_len=4)
    batch = next(iter(DataLoader(examples, batch_size=len(examples))))
    assert batch["history"].shape == (8, 4)
    assert batch["target"].tolist() == [2, 3, 4, 5, 6, 7, 4, 5]
    assert batch["user"].tolist() == [0] * 6 + [1] * 2


def test_sequence_examples_shift_and_cut():
    sequences = [np.array([1, 2, 3, 4, 5]), np.array([6]), np.array([7, 8])]
    examples = SequenceExamples(sequences, max_len=3)
    assert len(examples) == 2
    long_one, short_one = examples[0], examples[1]
    assert long_one["history"].tolist() == [2, 3, 4]  # cut to the last max_len + 1 = 4 items
    assert long_one["targets"].tolist() == [3, 4, 5]
    assert int(long_one["user"]) == 0
    assert short_one["history"].tolist() == [0, 0, 7]
    assert short_one["targets"].tolist() == [0, 0, 8]
    assert int(short_one["user"]) == 2


@pytest.mark.parametrize("length", [2, 4, 5, 7, 12])  # one window, exactly full, one over, several
def test_every_window_makes_every_item_after_the_first_a_target_once(length):
    sequences = [np.arange(1, length + 1), np.array([9]), np.array([20, 21])]
    examples = SequenceExamples(sequences, max_len=3, every_window=True)
    windows = [examples[i] for i in range(len(examples))]
    targets = [int(t) for w in windows if int(w["user"]) == 0 for t in w["targets"] if t > 0]
    assert sorted(targets) == list(range(2, length + 1))
    for window in windows:  # each target follows its own history, as in the last window
        history, shifted = window["history"].tolist(), window["targets"].tolist()
        assert all(h == 0 or t == h + 1 for h, t in zip(history, shifted))
    assert examples.history_lengths().tolist() == [int((w["history"] > 0).sum()) for w in windows]
    assert [int(w["user"]) for w in windows][-1] == 2 and 1 not in [int(w["user"]) for w in windows]
    last_only = SequenceExamples(sequences, max_len=3)
    assert len(last_only) == 2 and last_only[0]["targets"].tolist() == windows[0]["targets"].tolist()


# --- synthetic data --------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_well_formed():
    data = make_synthetic(num_users=200, num_items=100, num_intents=4, seq_len=(5, 12), seed=3)
    again = make_synthetic(num_users=200, num_items=100, num_intents=4, seq_len=(5, 12), seed=3)
    other = make_synthetic(num_users=200, num_items=100, num_intents=4, seq_len=(5, 12), seed=4)
    assert as_lists(data.sequences) == as_lists(again.sequences)
    assert as_lists(data.sequences) != as_lists(other.sequences)
    assert (data.name, data.num_users, data.num_items) == ("synthetic", 200, 100)
    assert data.item_ids.tolist() == list(range(101))
    lengths = np.array([len(s) for s in data.sequences])
    assert lengths.min() >= 5 and lengths.max() <= 12
    items = np.concatenate(data.sequences)
    assert items.dtype == np.int64 and items.min() >= 1 and items.max() <= 100


def test_synthetic_has_series_order_and_intent_switches():
    """Decode each item's cluster and place in the cluster's series (the world is drawn first
    from the seed, so it can be drawn again). Without noise (a) a user continues every
    cluster along its series, and (b) many next items come from a cluster the user visited
    earlier but not in the last three steps: the user's set of intents matters."""
    data = make_synthetic(num_users=300, noise=0.0, seed=5)
    world = _World.draw(np.random.default_rng(5), data.num_items, num_intents=8)
    cluster_of_position = np.repeat(np.arange(len(world.cluster_size)), world.cluster_size)
    cluster_of = np.zeros(data.num_items + 1, dtype=np.int64)  # indexed by item id
    place_of = np.zeros(data.num_items + 1, dtype=np.int64)
    cluster_of[world.cluster_items] = cluster_of_position
    place_of[world.cluster_items] = np.arange(data.num_items) - world.cluster_start[cluster_of_position]
    continues_series, returns_to_earlier_cluster, steps = [], 0, 0
    for sequence in data.sequences:
        clusters, places = cluster_of[sequence], place_of[sequence]
        for t in range(1, len(sequence)):
            earlier = np.flatnonzero(clusters[:t] == clusters[t])
            if len(earlier):
                step_in_series = (places[t] - places[earlier[-1]]) % world.cluster_size[clusters[t]]
                continues_series.append(step_in_series == 1)
                returns_to_earlier_cluster += earlier[-1] < t - 3
            steps += 1
    assert all(continues_series)
    assert returns_to_earlier_cluster / steps > 0.1


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(ValueError, match="noise"):
        make_synthetic(noise=1.0)
    with pytest.raises(ValueError, match="num_items"):
        make_synthetic(num_items=10)


# --- noise injection -------------------------------------------------------------------------


def test_inject_noise_replaces_about_the_fraction_deterministically():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 10**6, size=rng.integers(1, 60)) for _ in range(300)]
    noisy = inject_noise(sequences, 0.2, num_items=10**6, seed=1)
    assert [len(s) for s in noisy] == [len(s) for s in sequences]
    changed = sum(int((a != b).sum()) for a, b in zip(sequences, noisy))
    assert changed / sum(len(s) for s in sequences) == pytest.approx(0.2, abs=0.02)
    assert as_lists(inject_noise(sequences, 0.2, 10**6, seed=1)) == as_lists(noisy)
    assert as_lists(inject_noise(sequences, 0.2, 10**6, seed=2)) != as_lists(noisy)
    assert all(s.min() >= 1 and s.max() <= 10**6 for s in noisy if len(s))


def test_inject_noise_rounds_half_up_and_zero_is_identity():
    sequences = [np.arange(1, 6), np.arange(1, 16)]
    noisy = inject_noise(sequences, 0.1, num_items=10**9, seed=0)
    assert [int((a != b).sum()) for a, b in zip(sequences, noisy)] == [1, 2]  # 0.5 -> 1, 1.5 -> 2
    assert as_lists(inject_noise(sequences, 0.0, 10, seed=0)) == as_lists(sequences)
    for fraction in (-0.1, 1.0):
        with pytest.raises(ValueError, match="fraction"):
            inject_noise(sequences, fraction, 10, seed=0)


def test_inject_noise_on_histories_leaves_data_and_targets_untouched():
    data = make_synthetic(num_users=50, num_items=100, num_intents=4, seed=0)
    split = leave_one_out(data)
    originals = as_lists(data.sequences)
    targets = split.test_target.copy()
    noisy_histories = inject_noise(split.test_history, 0.3, data.num_items, seed=0)
    assert as_lists(noisy_histories) != as_lists(split.test_history)
    assert as_lists(data.sequences) == originals
    assert np.array_equal(split.test_target, targets)
