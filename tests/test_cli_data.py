"""Data files through the command line: reader options, what a run records of them, and every
bad input as one line with exit status 2 and nothing written."""

import json
import re
import shutil

import pytest
from test_data import BAD_INPUTS, ML_COLUMNS

from igrsr.cli import main
from igrsr.cli.options import flag
from igrsr.data import DataConfig, load_data, load_dataset, reload_data
from igrsr.train.runs import data_fingerprint


def one_line_error(capsys, *args) -> str:
    """The error line of a command that must fail with exit status 2 and no traceback."""
    assert main(list(args)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error.rstrip("\n")


def cli_options(options: dict) -> list:
    argv = []
    for name, value in options.items():
        argv += [flag(name), ",".join(value) if isinstance(value, tuple) else str(value)]
    return argv


# Cases whose option the command line cannot express as the Python call does: the reader's
# error then differs (a value argparse converts), or argparse itself refuses the option.
ON_THE_COMMAND_LINE = {  # (option, repr of the Python value): (line, message) / message / None
    ("format", "'xlsx'"): None,  # argparse refuses the choice, with its usage text
    ("columns", "'user,item'"): (1, "cannot guess the separator: .* into the 2 fields columns names"),
    ("min_rating", "'4'"): (None, "min_rating needs a rating column"),  # --min-rating 4 is the number 4
    ("k_core", "0"): "--k-core must be >= 1, got 0",  # an option's value, checked before the file is read
}


def command_line_case(options: dict, line, message):
    """(line, message) the command gives for a BAD_INPUTS case, a message alone for an option
    error that names no file, or None where the command line cannot pass the option."""
    for option, value in options.items():
        if (option, repr(value)) in ON_THE_COMMAND_LINE:
            return ON_THE_COMMAND_LINE[option, repr(value)]
    return line, message


@pytest.mark.parametrize("name, content, options, line, message", BAD_INPUTS)
def test_every_bad_data_file_is_one_line_from_the_command_and_nothing_is_written(
    tmp_path, capsys, name, content, options, line, message
):
    expected = command_line_case(options, line, message)
    if expected is None:
        pytest.skip("argparse refuses this option value itself")
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "runs"
    error = one_line_error(capsys, "train", "--data", str(path), *cli_options(options), "--out", str(out))
    if isinstance(expected, str):
        assert error == f"igrsr train: error: {expected}"
    else:
        line, message = expected
        assert error.startswith(f"igrsr train: error: {path}:{line}: " if line else f"igrsr train: error: {path}: ")
        assert re.search(message, error), error
    assert not out.exists()


def string_id_log(tmp_path):
    """A header-less, tab-separated log with string ids, ratings and a duplicated row."""
    rows = [
        (f"u{user:02d}", f"item-{(user * 7 + step * 3) % 23:02d}", str(1 + (user + step) % 5), str(1000 + 10 * step))
        for user in range(30)
        for step in range(8)
    ]
    rows.append(rows[6])  # rated 2: kept by --min-rating 2
    path = tmp_path / "log.data"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def test_headerless_log_with_string_ids_trains_records_its_reading_and_evaluates_as_recorded(tmp_path, capsys):
    path = string_id_log(tmp_path)
    reader = ["--columns", "user,item,rating,timestamp", "--sep", "tab", "--min-rating", "2", "--k-core", "2"]
    out = tmp_path / "runs"
    assert main(["train", "--data", str(path), *reader, "--model", "pop", "--out", str(out), "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert "dropped 1 duplicate (user, item, timestamp) rows" in output
    (run_dir,) = (out / "log").glob("pop-*")
    recorded = json.loads((run_dir / "run.json").read_text())["data"]
    assert recorded["source"]["path"] == str(path.resolve())
    assert (
        recorded["source"]["reader"]
        == DataConfig(columns="user,item,rating,timestamp", sep="tab", min_rating=2, k_core=2).to_dict()
    )
    assert recorded["preprocessing"]["duplicates_dropped"] == 1
    assert recorded["preprocessing"]["removed_by_min_rating"] > 0

    # Read again from the record: the same data, the same string ids behind the item numbers.
    again = reload_data(recorded["source"])
    direct = load_dataset(path, columns=ML_COLUMNS, sep="\t", min_rating=2, k_core=2)
    assert again.item_ids.tolist() == direct.item_ids.tolist() and again.item_ids[1].startswith("item-")
    assert again.user_ids == direct.user_ids and again.user_ids[0] == "u00"

    # evaluate without --data reads the run's file as the run read it.
    report = tmp_path / "evaluated.json"
    assert main(["evaluate", str(run_dir), "--json", str(report)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert json.loads(report.read_text())[0]["test"] == pytest.approx(results["test"])
    # Other reader options are other data: refused, not scored.
    assert "other data" in one_line_error(capsys, "evaluate", str(run_dir), "--data", str(path), *reader[:4])


def test_reader_options_are_checked_before_anything_is_read(tmp_path, capsys):
    assert one_line_error(capsys, "train", "--min-rating", "3", "--out", str(tmp_path)) == (
        "igrsr train: error: --min-rating applies to a data file (--data), not to the embedded synthetic data"
    )
    assert "--k-core must be >= 1, got -1" in one_line_error(capsys, "study", "--k-core", "-1", "--out", str(tmp_path))
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("run")
    path = string_id_log(tmp_path)
    args = ["--data", str(path), "--columns", "user,item,rating,timestamp", "--model", "pop", "--no-progress"]
    assert main(["train", *args, "--out", str(tmp_path / "runs")]) == 0
    return next((tmp_path / "runs" / "log").glob("pop-*"))


CORRUPTIONS = [  # file, how it is spoiled, the error
    ("best.pt", lambda blob: blob[: len(blob) // 2], "best.pt cannot be read (truncated or corrupt?)"),
    ("best.pt", lambda blob: b"", "best.pt cannot be read (truncated or corrupt?)"),
    ("best.pt", lambda blob: b"not a checkpoint\n", "best.pt cannot be read (truncated or corrupt?)"),
    ("results.json", lambda blob: blob[: len(blob) // 2], "results.json is not valid JSON (truncated or corrupt?)"),
    ("results.json", lambda blob: b'{"schema": 2}', "results.json is not a run description: it has no 'model'"),
]


@pytest.mark.parametrize("name, spoil, message", CORRUPTIONS)
def test_evaluate_names_the_truncated_or_corrupt_file(finished_run, tmp_path, capsys, name, spoil, message):
    run_dir = tmp_path / finished_run.name
    shutil.copytree(finished_run, run_dir)
    (run_dir / name).write_bytes(spoil((run_dir / name).read_bytes()))
    error = one_line_error(capsys, "evaluate", str(run_dir))
    assert f"{run_dir / name}" in error and message in error


def test_files_that_cannot_be_written_are_one_line_and_debug_shows_the_traceback(finished_run, tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    source = json.loads((finished_run / "run.json").read_text())["data"]["source"]
    args = ["train", "--data", source["path"], "--columns", "user,item,rating,timestamp", "--model", "pop"]
    error = one_line_error(capsys, *args, "--out", str(blocked / "runs"))
    assert error.startswith(f"igrsr train: error: {blocked / 'runs'}") and error.endswith("Not a directory")
    with pytest.raises(NotADirectoryError):
        main(["--debug", *args, "--out", str(blocked / "runs")])
    with pytest.raises(ValueError, match="is a directory, not a data file"):
        main(["--debug", "train", "--data", str(tmp_path)])


def test_the_synthetic_data_is_recorded_and_rebuilt_as_generated():
    quick = load_data(None, synthetic={"num_users": 40, "seq_len": (5, 9)})
    recorded = json.loads(json.dumps(quick.source))  # as run.json stores it
    assert recorded == {"path": "synthetic", "synthetic": {"num_users": 40, "seq_len": [5, 9]}}
    assert data_fingerprint(reload_data(recorded)) == data_fingerprint(quick)
    assert data_fingerprint(reload_data(recorded, "synthetic")) == data_fingerprint(quick)
