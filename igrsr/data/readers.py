"""Readers for the interaction formats of DESIGN §2; each returns :class:`InteractionData`.

* ``.txt``: one user per line, ``user item item ...`` in time order, integer ids.
* ``.inter``: RecBole atomic files, tab-separated, header fields like ``user_id:token``.
* ``.csv`` / ``.tsv``: a header row naming the user, item and timestamp columns.

Malformed input raises :class:`DataFormatError` naming the file and 1-based line.
"""

from __future__ import annotations

import csv
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .interactions import DataFormatError, InteractionData, build_interactions, integers_if_possible


def read_sequence_file(path) -> InteractionData:
    """Read one user per line: ``user item item ...``, items in time order, integer ids.

    Blank lines are skipped. Users keep the order of the file.
    """
    user_ids: list[int] = []
    sequences: list[list[int]] = []
    line_of_user: dict[int, int] = {}
    with open(path, encoding="utf-8-sig") as file:
        for line_number, line in enumerate(file, start=1):
            tokens = line.split()
            if not tokens:
                continue
            user, *items = _parse_integers(path, line_number, tokens)
            if not items:
                raise DataFormatError(path, f"user {user} has no items", line_number)
            if user in line_of_user:
                raise DataFormatError(
                    path, f"user {user} already appeared on line {line_of_user[user]}", line_number
                )
            line_of_user[user] = line_number
            user_ids.append(user)
            sequences.append(items)
    flat_items = np.fromiter(chain.from_iterable(sequences), dtype=np.int64)
    lengths = np.array([len(items) for items in sequences], dtype=np.int64)
    return build_interactions(path, user_ids, flat_items, lengths)


def _parse_integers(path, line_number: int, tokens: list[str]) -> list[int]:
    try:
        return [int(token) for token in tokens]
    except ValueError:
        bad_token = next(token for token in tokens if not _parses(int, token))
        raise DataFormatError(path, f"id {bad_token!r} is not an integer", line_number) from None


def read_recbole_inter(path) -> InteractionData:
    """Read a RecBole atomic ``.inter`` file (tab-separated, header ``name:type`` fields).

    The ``user_id``, ``item_id`` and ``timestamp`` columns are found by name; each user's items
    are sorted by timestamp, ties kept in file order.
    """
    header, rows, line_numbers = _read_table(path, delimiter="\t", quoting=csv.QUOTE_NONE)
    column_names = [field.split(":", 1)[0].strip() for field in header]
    return _interactions_from_table(
        path, column_names, rows, line_numbers, "user_id", "item_id", "timestamp"
    )


def read_csv(
    path,
    sep: Optional[str] = None,
    user_col: str = "user",
    item_col: str = "item",
    time_col: Optional[str] = "timestamp",
) -> InteractionData:
    """Read a CSV/TSV file with a header row; items are sorted by ``time_col`` per user.

    ``sep=None`` takes the separator from the extension (``.tsv`` tab, ``.csv`` comma), or
    else from the header line. ``time_col=None`` keeps the file order. Timestamps are numbers
    or ISO-8601 dates.
    """
    if sep is None:
        sep = _sniff_separator(path)
    header, rows, line_numbers = _read_table(path, delimiter=sep, quoting=csv.QUOTE_MINIMAL)
    column_names = [field.strip() for field in header]
    return _interactions_from_table(path, column_names, rows, line_numbers, user_col, item_col, time_col)


def _sniff_separator(path) -> str:
    by_extension = {".tsv": "\t", ".csv": ","}
    suffix = Path(path).suffix.lower()
    if suffix in by_extension:
        return by_extension[suffix]
    with open(path, encoding="utf-8-sig") as file:
        header_line = file.readline()
    for candidate in ("\t", ",", ";"):
        if candidate in header_line:
            return candidate
    raise DataFormatError(path, "cannot tell the column separator from the header; pass sep", 1)


def _read_table(path, delimiter: str, quoting: int) -> tuple[list[str], list[list[str]], list[int]]:
    """Return the header, the non-blank data rows and each row's line number.

    Every row must have as many fields as the header.
    """
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, delimiter=delimiter, quoting=quoting, skipinitialspace=True)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(path, "empty file: no header row")
        rows, line_numbers = [], []
        for row in reader:
            if not "".join(row).strip():
                continue
            if len(row) != len(header):
                raise DataFormatError(
                    path, f"row has {len(row)} fields but the header has {len(header)}", reader.line_num
                )
            rows.append(row)
            line_numbers.append(reader.line_num)
    if not rows:
        raise DataFormatError(path, "no interactions found: the file has a header but no rows")
    return header, rows, line_numbers


def _interactions_from_table(
    path,
    column_names: list[str],
    rows: list[list[str]],
    line_numbers: list[int],
    user_col: str,
    item_col: str,
    time_col: Optional[str],
) -> InteractionData:
    """Group rows by user (users in sorted id order) and sort each user's items by time."""

    def column(name: str) -> np.ndarray:
        if name not in column_names:
            raise DataFormatError(path, f"missing column {name!r}; columns are {column_names}", 1)
        index = column_names.index(name)
        values = np.array([row[index] for row in rows])
        _check_no_empty_values(path, name, values, line_numbers)
        return values

    user_keys = integers_if_possible(column(user_col))
    items = integers_if_possible(column(item_col))
    user_ids, user_codes = np.unique(user_keys, return_inverse=True)
    if time_col is None:
        order = np.argsort(user_codes, kind="stable")
    else:
        # Two stable sorts: by time, then by user; equal times keep the file order.
        by_time = np.argsort(_parse_times(path, column(time_col), line_numbers), kind="stable")
        order = by_time[np.argsort(user_codes[by_time], kind="stable")]
    lengths = np.bincount(user_codes, minlength=len(user_ids))
    return build_interactions(path, user_ids.tolist(), items[order], lengths)


def _check_no_empty_values(path, name: str, values: np.ndarray, line_numbers: list[int]) -> None:
    empty = np.flatnonzero(np.char.str_len(np.char.strip(values)) == 0)
    if len(empty):
        raise DataFormatError(path, f"empty value in column {name!r}", line_numbers[empty[0]])


# Timestamp formats, tried in this order on the first timestamp; every other must match it.
_TIME_FORMATS = {np.dtype(np.float64): "a number", np.dtype("datetime64[ns]"): "an ISO-8601 date"}


def _parse_times(path, values: np.ndarray, line_numbers: list[int]) -> np.ndarray:
    """Parse timestamps as numbers or, when the first is not a number, as ISO-8601 dates."""
    dtype = next((dtype for dtype in _TIME_FORMATS if _parses(_as(dtype), values[0])), None)
    if dtype is None:
        message = f"timestamp {str(values[0])!r} is neither a number nor an ISO-8601 date"
        raise DataFormatError(path, message, line_numbers[0])
    try:
        times = values.astype(dtype)
    except ValueError:
        bad = next(i for i, value in enumerate(values) if not _parses(_as(dtype), value))
        message = f"timestamp {str(values[bad])!r} is not {_TIME_FORMATS[dtype]}"
        raise DataFormatError(path, message, line_numbers[bad]) from None
    missing = np.isnat(times) if dtype.kind == "M" else ~np.isfinite(times)
    if missing.any():
        bad = int(np.flatnonzero(missing)[0])
        message = f"timestamp {str(values[bad])!r} is missing or infinite"
        raise DataFormatError(path, message, line_numbers[bad])
    return times


def _as(dtype: np.dtype) -> Callable:
    return partial(np.asarray, dtype=dtype)


def _parses(parse: Callable, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


_READERS_BY_FORMAT: dict[str, Callable[..., InteractionData]] = {
    "txt": read_sequence_file,
    "inter": read_recbole_inter,
    "csv": partial(read_csv, sep=","),
    "tsv": partial(read_csv, sep="\t"),
}


def load_dataset(path, format: str = "auto") -> InteractionData:
    """Read ``path`` with the reader for its format: ``txt``, ``inter``, ``csv`` or ``tsv``.

    ``format="auto"`` takes the format from the file extension.
    """
    if format == "auto":
        format = Path(path).suffix.lower().lstrip(".")
    if format not in _READERS_BY_FORMAT:
        known = ", ".join(_READERS_BY_FORMAT)
        raise ValueError(f"unknown data format {format!r} for {path}; expected one of: {known}")
    return _READERS_BY_FORMAT[format](path)
