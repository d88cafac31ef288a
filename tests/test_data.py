"""igrsr.data: readers, remapping, leave-one-out, padding, training examples, synthetic data, noise."""

import bz2
import gzip
import lzma
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from igrsr.data import (
    DataFormatError,
    PrefixExamples,
    SequenceExamples,
    collate_trimmed,
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
    # Its ids are already 1..N, so the remapping keeps them: the sequences are the lines.
    assert np.array_equal(data.item_ids, np.arange(data.num_items + 1))
    lines = [list(map(int, line.split())) for line in BEAUTY.read_text().splitlines()]
    assert data.user_ids == [line[0] for line in lines]
    assert as_lists(data.sequences) == [line[1:] for line in lines]
    assert data.name == "Beauty" and data.preprocessing == {}


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


# --- logs as people have them: header-less tables, string ids, compression ------------------

MOVIELENS = [
    ("196", "242", "3", "881250949"),
    ("186", "302", "3", "891717742"),
    ("196", "377", "1", "878887116"),
    ("22", "377", "1", "878887116"),
    ("196", "51", "2", "880606923"),
    ("186", "346", "1", "886397596"),
]
ML_COLUMNS = ("user", "item", "rating", "timestamp")


def movielens_text(sep: str) -> str:
    return "".join(sep.join(row) + "\n" for row in MOVIELENS)


def by_user_in_time_order(rows, user=0, item=1, time=3):
    """Plain reference: each user's items sorted by time, users in numeric order."""
    users = sorted({int(r[user]) for r in rows})
    return [
        [int(r[item]) for r in sorted((r for r in rows if int(r[user]) == u), key=lambda r: int(r[time]))]
        for u in users
    ]


@pytest.mark.parametrize("sep", ["\t", "::", ",", ";", "|", " ", "  "])
def test_headerless_movielens_with_columns_and_guessed_separator(tmp_path, sep):
    data = load_dataset(write(tmp_path, "u.data", movielens_text(sep)), columns=ML_COLUMNS)
    assert data.user_ids == [22, 186, 196] and data.name == "u"
    assert [data.item_ids[s].tolist() for s in data.sequences] == by_user_in_time_order(MOVIELENS)
    assert data.preprocessing == {"duplicates_dropped": 0}


def test_columns_skip_and_ignore_fields_and_named_separators(tmp_path):
    path = write(tmp_path, "ratings.dat", movielens_text("::"))
    skipped = load_dataset(path, columns=("user", "item", "-", "timestamp"), sep="::")
    extra = load_dataset(path, columns=("user", "item", "stars", "timestamp"))
    assert as_lists(skipped.sequences) == as_lists(extra.sequences)
    tab = write(tmp_path, "u.data", movielens_text("\t"))
    assert as_lists(load_dataset(tab, columns=ML_COLUMNS, sep="tab").sequences) == as_lists(skipped.sequences)
    in_file_order = load_dataset(tab, columns=("user", "item", "-", "-"), time_col=None)
    assert [in_file_order.item_ids[s].tolist() for s in in_file_order.sequences] == [
        [377],
        [302, 346],
        [242, 377, 51],
    ]


def test_string_ids_round_trip_through_the_split(tmp_path):
    rows = [
        ("ålice", "B0001 x", 3),
        ("bob", "007", 1),
        ("ålice", "7", 1),
        ("bob", "tea, green", 2),
        ("ålice", "007", 2),
        ("bob", "7", 3),
        ("ålice", "B0001 x", 4),
    ]
    text = "user,item,timestamp\n" + "".join(f'{u},"{i}",{t}\n' for u, i, t in rows)
    data = load_dataset(write(tmp_path, "log.csv", text))
    assert data.user_ids == ["bob", "ålice"]
    assert data.item_ids.tolist() == ["", "007", "7", "B0001 x", "tea, green"]  # "007" and "7" stay apart
    originals = {u: [i for uu, i, t in sorted(rows, key=lambda r: r[2]) if uu == u] for u, _, _ in rows}
    assert [data.item_ids[s].tolist() for s in data.sequences] == [originals["bob"], originals["ålice"]]
    split = leave_one_out(data)
    assert data.item_ids[split.test_target].tolist() == ["7", "B0001 x"]
    assert [data.user_ids[u] for u in split.user_index] == ["bob", "ålice"]


def test_ids_beyond_int64_are_kept_as_tokens(tmp_path):
    huge = "99999999999999999999"
    data = load_dataset(write(tmp_path, "big.csv", f"user,item,timestamp\n{huge},5,2\n1,{huge},1\n1,5,3\n"))
    assert data.user_ids == ["1", huge] and data.item_ids.tolist() == ["", "5", huge]
    assert [data.item_ids[s].tolist() for s in data.sequences] == [[huge, "5"], ["5"]]
    txt = load_dataset(write(tmp_path, "big.txt", f"1 2 {huge}\n{huge} 3\n"))
    assert txt.user_ids == ["1", huge] and txt.item_ids.tolist() == ["", "2", "3", huge]


def test_parquet_ids_beyond_int64_are_kept_as_tokens_not_wrapped(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    largest = 2**64 - 1  # -1 once cast to int64
    table = pa.table({
        "user": pa.array([1, largest, 1], type=pa.uint64()),
        "item": pa.array([1e20, 3.0, 4.0]),  # a float beyond int64, whole
        "timestamp": [1, 2, 3],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "big.parquet")
    data = load_dataset(tmp_path / "big.parquet")
    assert data.user_ids == ["1", str(largest)]
    assert [data.item_ids[s].tolist() for s in data.sequences] == [["100000000000000000000", "4"], ["3"]]


def compress(path: Path, suffix: str) -> Path:
    blob = path.read_bytes()
    if suffix == ".zst":
        blob = pytest.importorskip("zstandard").ZstdCompressor().compress(blob)
    else:
        blob = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix](blob)
    target = path.with_name(path.name + suffix)
    target.write_bytes(blob)
    return target


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_compressed_files_read_like_the_plain_ones(tmp_path, suffix):
    plain = {
        "seq.txt": ({}, "1 5 3\n2 3 4 4\n"),
        "u.data": ({"columns": ML_COLUMNS}, movielens_text("\t")),
        "log.csv": ({}, "user,item,timestamp\na,x,2\na,y,1\n"),
        "log.inter": ({}, INTER_HEADER + "1\t2\t5\t10\n1\t3\t5\t9\n"),
    }
    for name, (options, text) in plain.items():
        path = write(tmp_path, name, text)
        expected, got = load_dataset(path, **options), load_dataset(compress(path, suffix), **options)
        assert as_lists(got.sequences) == as_lists(expected.sequences)
        assert got.item_ids.tolist() == expected.item_ids.tolist() and got.name == expected.name


def test_missing_optional_packages_are_named(tmp_path, monkeypatch):
    from igrsr.data import sources

    monkeypatch.setattr(sources, "zstandard", None)
    with pytest.raises(DataFormatError, match="needs the zstandard package: pip install zstandard"):
        load_dataset(write(tmp_path, "a.txt.zst", "x"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DataFormatError, match="needs pyarrow: pip install pyarrow"):
        load_dataset(write(tmp_path, "a.parquet", "x"))


def test_parquet_columns_of_each_type(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "user": pa.array(["u2", "u1", "u2", "u1"]).dictionary_encode(),
            "item": pa.array([30, 10, 20, 10], type=pa.int32()),
            "timestamp": pa.array(
                np.array(["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-01"], dtype="datetime64[s]")
            ),
            "rating": pa.array([5.0, 4.0, 1.0, 4.0]),
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    data = load_dataset(tmp_path / "log.parquet", min_rating=2)
    assert data.user_ids == ["u1", "u2"] and data.item_ids.tolist() == [0, 10, 30]
    assert as_lists(data.sequences) == [[1], [2]]
    assert data.preprocessing["duplicates_dropped"] == 1
    pq.write_table(table.set_column(0, "user", pa.array(["a", None, "b", "c"])), tmp_path / "nulls.parquet")
    with pytest.raises(DataFormatError, match=r"nulls.parquet: row 2: empty value in column 'user'$"):
        load_dataset(tmp_path / "nulls.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(DataFormatError, match=r"bad.parquet: cannot read it as Parquet \("):
        load_dataset(tmp_path / "bad.parquet")
    with pytest.raises(DataFormatError, match=r"missing column 'who'; columns are \['user', 'item', "):
        load_dataset(tmp_path / "log.parquet", user_col="who")
    (tmp_path / "log.csv").write_bytes((tmp_path / "log.parquet").read_bytes())
    with pytest.raises(DataFormatError, match="the file is .parquet data but its name does not end in .parquet"):
        load_dataset(tmp_path / "log.csv")
    compressed = compress(tmp_path / "log.parquet", ".gz")
    assert as_lists(load_dataset(compressed, min_rating=2).sequences) == as_lists(data.sequences)


def test_quoted_fields_are_unquoted_and_lines_stay_counted(tmp_path):
    inter = write(tmp_path, "q.inter", INTER_HEADER + '"10"\t"9"\t"5"\t"2"\n"10"\t"a\tb"\t1\t1\n')
    data = load_dataset(inter)
    assert data.user_ids == [10] and data.item_ids.tolist() == ["", "9", "a\tb"]
    multiline = write(tmp_path, "q.csv", 'user,item,timestamp\n1,"two\nlines",1\n1,x,later\n')
    with pytest.raises(DataFormatError, match="timestamp 'later' is not a number") as error:
        load_dataset(multiline)
    assert error.value.line == 4


# --- preprocessing: min_rating, duplicates, k-core --------------------------------------------


def test_duplicates_dropped_counted_and_recorded(tmp_path, capsys):
    text = "user,item,timestamp\n1,a,1\n1,b,1\n1,a,1\n1,a,2\n2,a,1\n1,b,1\n"
    path = write(tmp_path, "d.csv", text)
    data = load_dataset(path)
    assert f"{path}: dropped 2 duplicate (user, item, timestamp) rows" in capsys.readouterr().out
    assert data.preprocessing == {"duplicates_dropped": 2}
    assert [data.item_ids[s].tolist() for s in data.sequences] == [["a", "b", "a"], ["a"]]
    kept = load_dataset(path, drop_duplicates=False)
    assert kept.num_interactions == 6 and kept.preprocessing == {"drop_duplicates": False}
    no_times = load_dataset(path, time_col=None)  # without timestamps a repeat is a visit
    assert no_times.num_interactions == 6 and no_times.preprocessing == {}


def test_min_rating_keeps_ratings_at_least_the_threshold(tmp_path, capsys):
    data = load_dataset(write(tmp_path, "u.data", movielens_text("\t")), columns=ML_COLUMNS, min_rating=2)
    kept = [r for r in MOVIELENS if int(r[2]) >= 2]
    assert [data.item_ids[s].tolist() for s in data.sequences] == by_user_in_time_order(kept)
    assert data.user_ids == [186, 196]
    assert data.preprocessing == {
        "interactions_read": 6,
        "min_rating": 2,
        "removed_by_min_rating": 3,
        "duplicates_dropped": 0,
    }
    assert "min_rating=2 removed 3 of 6 interactions" in capsys.readouterr().out


def k_core_reference(rows, k):
    """Brute force: drop one user or item with fewer than k rows at a time, until none."""
    rows = list(rows)
    while True:
        counts = {}
        for user, item, _ in rows:
            counts[("u", user)] = counts.get(("u", user), 0) + 1
            counts[("i", item)] = counts.get(("i", item), 0) + 1
        weak = next((key for key in sorted(counts) if counts[key] < k), None)
        if weak is None:
            return rows
        rows = [r for r in rows if ("u", r[0]) != weak and ("i", r[1]) != weak]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_k_core_matches_a_brute_force_reference(tmp_path, k):
    rng = np.random.default_rng(k)
    users, items = rng.zipf(1.6, 600) % 80, rng.zipf(1.4, 600) % 60  # a few heavy users and items
    rows = [(int(u), int(i), t) for t, (u, i) in enumerate(zip(users, items))]
    text = "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows)
    data = load_dataset(write(tmp_path, "log.csv", text), k_core=k)
    expected = k_core_reference(rows, k)
    got = sorted((u, int(data.item_ids[i])) for u, s in zip(data.user_ids, data.sequences) for i in s)
    assert got == sorted((u, i) for u, i, _ in expected)
    assert data.num_items == len({i for _, i, _ in expected})
    assert data.item_ids[1:].tolist() == sorted({i for _, i, _ in expected})  # remapped to 1..N
    assert data.preprocessing["removed_by_k_core"] == len(rows) - len(expected)


def test_preprocessing_order_is_rating_then_duplicates_then_k_core(tmp_path):
    # user 1: a duplicate pair (one row after dedupe) and a low rating; user 2: two items.
    text = "user,item,rating,timestamp\n1,a,5,1\n1,a,5,1\n1,b,1,2\n2,a,5,1\n2,b,5,2\n3,a,5,3\n3,b,5,4\n"
    path = write(tmp_path, "log.csv", text)
    data = load_dataset(path, min_rating=3, k_core=2)
    assert data.user_ids == [2, 3] and as_lists(data.sequences) == [[1, 2], [1, 2]]
    assert data.preprocessing == {
        "interactions_read": 7,
        "min_rating": 3,
        "removed_by_min_rating": 1,
        "duplicates_dropped": 1,
        "k_core": 2,
        "removed_by_k_core": 1,
        "k_core_rounds": 1,
    }


def test_k_core_on_sequence_files(tmp_path):
    data = load_dataset(write(tmp_path, "s.txt", "1 5 6 5\n2 6 7\n3 5 6\n"), k_core=2)
    assert data.user_ids == [1, 3] and data.item_ids.tolist() == [0, 5, 6]
    assert as_lists(data.sequences) == [[1, 2, 1], [1, 2]]


# --- every bad input: one line naming the file (and the line) --------------------------------

_GZIP = gzip.compress(b"user,item,timestamp\n1,2,3\n" * 50)
ML = movielens_text("\t")
# fmt: off
BAD_INPUTS = [  # file name, content (None: no file), options, line, message
    ("missing.csv", None, {}, None, "no such file"),
    ("folder", "DIR", {}, None, "is a directory, not a data file"),
    ("empty.csv", "", {}, None, "empty file: no header row"),
    ("empty.data", "\n \n", {"columns": ML_COLUMNS}, None, "no interactions found: the file is empty"),
    ("blank.txt", "\n\n", {}, None, "no interactions found"),
    ("u.data", ML, {}, None, r"unknown data format 'data'; expected one of txt, inter, csv, tsv, parquet, "
                             r"each optionally compressed \(.gz, .bz2, .xz, .zst, e.g. ratings.csv.gz\), or columns="),
    ("u.data.gz", _GZIP, {}, None, "unknown data format 'data'"),
    ("README", "1 2\n", {}, None, r"unknown data format \(the name has no extension\)"),
    ("a.csv", "user,item\n1,2\n", {"format": "xlsx"}, None, "unknown data format 'xlsx'"),
    ("u.data", ML, {"columns": ("user", "user", "x", "y")}, None, "columns: 'user' is named twice"),
    ("u.data", ML, {"columns": "user,item"}, None, "columns: expected a sequence of column names"),
    ("u.data", ML, {"columns": ("user",)}, None, "columns: expected at least two non-empty names"),
    ("a.inter", INTER_HEADER, {"columns": ML_COLUMNS}, None, "columns: names the fields of a header-less"),
    ("u.data", ML, {"columns": ("usr", "item", "rating", "timestamp")}, None,
     r"missing column 'user'; columns are \['usr', 'item', 'rating', 'timestamp'\]; pass user_col$"),
    ("a.csv", "user,product,timestamp\n1,2,3\n", {}, 1, "missing column 'item'.*; pass item_col$"),
    ("a.csv", "user,item\n1,2\n", {}, 1, r"missing column 'timestamp'.*pass time_col \(None keeps the file order\)"),
    ("a.csv", "user,item,user,timestamp\n1,2,3,4\n", {}, 1, "column 'user' appears twice"),
    ("u.data", "1\t2\t3\t4\n\n1\t2\t3\n", {"columns": ML_COLUMNS}, 3,
     r"row has 3 fields but columns names 4 \(separator: tab\)"),
    ("u.data", "1\t2\t3\t4\n1\t \t3\t5\n", {"columns": ML_COLUMNS}, 2, "empty value in column 'item'"),
    ("u.data", "1\t2\t3\t4\n1\t3\tfive\t5\n", {"columns": ML_COLUMNS, "min_rating": 3}, 2,
     "rating 'five' is not a number"),
    ("u.data", "1\t2\tnan\t4\n", {"columns": ML_COLUMNS, "min_rating": 3}, 1, "rating 'nan' is missing or infinite"),
    ("u.data", "1\t2\t3\t4\n1\t3\t3\tx\n", {"columns": ML_COLUMNS}, 2, "timestamp 'x' is not a number"),
    ("u.data", "1-2-3-4\n", {"columns": ML_COLUMNS}, 1, "cannot guess the separator: none of tab, '::', comma, "
                                                        "semicolon, pipe, whitespace cuts line 1 into the 4 fields"),
    ("a.csv", "useritem\n12\n", {}, 1, "cannot guess the separator: none of comma, tab"),
    ("a.csv", b"user,item,timestamp\n1,caf\xe9,1\n", {}, 2,
     "byte 0xe9 at column 6 is not valid utf-8; pass the file's encoding"),
    ("a.csv", b"us\xe9r,item,timestamp\n1,2,1\n", {}, 1, "byte 0xe9 at column 3 is not valid utf-8"),
    ("a.txt", b"1 2 3\n4 5 \xe9\n", {}, 2, "byte 0xe9 at column 5 is not valid utf-8"),
    ("a.inter", INTER_HEADER.encode() + b"1\t\xff\t1\t1\n", {}, 2, "byte 0xff at column 3 is not valid utf-8"),
    ("u.data", b"1\t2\t3\t4\n1\t\xe93\t3\t5\n", {"columns": ML_COLUMNS}, 2, "byte 0xe9 at column 3 is not valid"),
    ("a.csv", "user,item,timestamp\n1,2,1e400\n", {}, 2, "timestamp '1e400' is missing or infinite"),
    ("a.csv", 'user,item,timestamp\n1,"a"b,1\n', {}, 2, "bad quoting"),
    ("a.csv", _GZIP, {}, None, "the file is .gz data but its name does not end in .gz"),
    ("a.txt", "1 2\n".encode("utf-16"), {}, None, "UTF-16 byte-order mark; pass encoding='utf-16'"),
    ("u.data", "user\titem\trating\ttimestamp\n" + ML, {"columns": ML_COLUMNS}, 1,
     r"looks like a header; columns= is for files without one"),
    ("a.csv.gz", _GZIP[:-9], {}, None, r"cannot decompress it as gzip \(.*\): the file is truncated or not gzip"),
    ("a.csv.gz", b"plain text", {}, None, "cannot decompress it as gzip"),
    ("a.txt.bz2", b"BZh9 not really", {}, None, "cannot decompress it as bz2"),
    ("a.txt.xz", lzma.compress(b"1 2 3\n" * 99)[:-7], {}, None, "cannot decompress it as xz"),
    ("a.txt", "1 2\n3\n", {}, 2, "user 3 has no items"),
    ("u.data", ML, {"columns": ML_COLUMNS, "min_rating": 4}, None,
     r"min_rating=4 removed every interaction \(the highest rating is 3\)"),
    ("u.data", ML, {"columns": ML_COLUMNS, "k_core": 4}, None,
     "k_core=4 removed all 6 interactions left .*; lower k_core"),
    ("a.txt", "1 2 3\n", {"min_rating": 3}, None, "min_rating needs a rating column, and this file has none"),
    ("a.csv", "user,item,timestamp\n1,2,3\n", {"min_rating": 1}, 1, "missing column 'rating'.*min_rating needs it"),
    ("a.txt", "1 2\n", {"k_core": 0}, None, "k_core: expected a positive integer or None, got 0"),
    ("a.txt", "1 2\n", {"min_rating": "4"}, None, "min_rating: expected a finite number or None, got '4'"),
    ("a.txt", "1 2\n", {"encoding": "klingon"}, None, "encoding: unknown text encoding 'klingon'"),
    ("a.txt", "1 2\n", {"sep": ","}, None, "sep: does not apply to txt files"),
    ("a.csv", "user,item\n1,2\n", {"sep": "\n"}, None, "sep: expected a non-empty separator"),
]
# fmt: on


@pytest.mark.parametrize("name, content, options, line, message", BAD_INPUTS)
def test_every_bad_input_is_one_line_naming_the_file(tmp_path, name, content, options, line, message):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataFormatError, match=message) as error:
        load_dataset(path, **options)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"{path}:{line}: " if line else f"{path}: ")
    assert error.value.line == line


def test_truncated_zstd_is_an_error_not_a_short_file(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    blob = zstandard.ZstdCompressor().compress(b"1 2 3\n" * 1000)
    (tmp_path / "a.txt.zst").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match="cannot decompress it as zstd .*the file is truncated"):
        load_dataset(tmp_path / "a.txt.zst")


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


BATCH_KINDS = {
    "prefix": lambda sequences: PrefixExamples(sequences, 5),
    "sequence": lambda sequences: SequenceExamples(sequences, 5),
    "every-window": lambda sequences: SequenceExamples(sequences, 5, every_window=True),
}


@pytest.mark.parametrize("make", BATCH_KINDS.values(), ids=BATCH_KINDS.keys())
def test_a_batch_built_at_once_is_the_collated_trimmed_examples(make):
    rng = np.random.default_rng(0)
    examples = make([rng.integers(1, 30, size=length) for length in [1, 2, 3, 6, 9, 14, 2, 7]])
    for size in [1, 2, 5, len(examples)]:
        indices = rng.choice(len(examples), size=size, replace=False)
        expected = collate_trimmed([examples[i] for i in indices])
        got = examples.batch(indices)
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name].dtype == expected[name].dtype and torch.equal(got[name], expected[name]), name


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
