"""Readers for interaction logs as people have them; each returns :class:`InteractionData`.

* ``.txt``: one user per line, ``user item item ...`` in time order, integer ids.
* ``.inter``: RecBole atomic files, tab-separated, header fields like ``user_id:token``.
* ``.csv`` / ``.tsv`` / any delimited text: a header row naming the columns, or ``columns=``
  naming the fields of a header-less file (MovieLens ``u.data``:
  ``columns=("user", "item", "rating", "timestamp")``).  The separator is guessed unless given.
* ``.parquet``: named columns, through the optional ``pyarrow`` package.

Any of them may be compressed: ``.gz``, ``.bz2``, ``.xz``, or ``.zst`` (with the optional
``zstandard`` package), named after the format (``ratings.csv.gz``).  Ids are any tokens; ids
that are all integers fitting int64 are kept as integers and sort numerically.  Every reader
takes the preprocessing options of :mod:`igrsr.data.preprocess` (``min_rating``,
``drop_duplicates``, ``k_core``).  Bad input raises a one-line :class:`DataFormatError`
naming the file and, where it applies, the 1-based line.
"""

from __future__ import annotations

from itertools import chain
from typing import Optional, Sequence

import numpy as np

from .interactions import DataFormatError, InteractionData, integers_if_possible, sorted_ids_and_codes
from .preprocess import Log, check_options, to_interactions
from .sources import COMPRESSIONS, check_file, dataset_name, format_and_compression, read_text
from .tables import Table, check_column_names, parse_numbers, parse_times, read_text_table, separator

FORMATS = ("txt", "inter", "csv", "tsv", "parquet")


def read_sequence_file(
    path, *, encoding: str = "utf-8", min_rating=None, drop_duplicates: bool = True, k_core=None
) -> InteractionData:
    """Read one user per line: ``user item item ...``, items in time order, integer ids.

    Blank lines are skipped. Users keep the order of the file.  The file has no ratings (so
    no ``min_rating``) and no timestamps (so no duplicates to drop: a repeated item is a
    repeat visit); ``k_core`` applies.
    """
    check_options(path, min_rating, k_core)
    user_ids: list[int] = []
    sequences: list[list[int]] = []
    line_of_user: dict[int, int] = {}
    for line_number, line in enumerate(read_text(path, encoding).split("\n"), start=1):
        tokens = line.split()
        if not tokens:
            continue
        user, *items = _parse_integers(path, line_number, tokens)
        if not items:
            raise DataFormatError(path, f"user {user} has no items", line_number)
        if user in line_of_user:
            raise DataFormatError(path, f"user {user} already appeared on line {line_of_user[user]}", line_number)
        line_of_user[user] = line_number
        user_ids.append(user)
        sequences.append(items)
    if not sequences:
        raise DataFormatError(path, "no interactions found")
    lengths = [len(items) for items in sequences]
    item_ids, item_codes = sorted_ids_and_codes(_int64_or_strings(list(chain.from_iterable(sequences))))
    log = Log(_int64_or_strings(user_ids), np.repeat(np.arange(len(user_ids)), lengths), item_ids, item_codes)
    return to_interactions(path, log, dataset_name(path), min_rating, drop_duplicates, k_core)


def _parse_integers(path, line_number: int, tokens: list[str]) -> list[int]:
    try:
        return [int(token) for token in tokens]
    except ValueError:
        bad_token = next(token for token in tokens if not _is_integer(token))
        raise DataFormatError(path, f"id {bad_token!r} is not an integer", line_number) from None


def _is_integer(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _int64_or_strings(numbers: list[int]) -> np.ndarray:
    """Integers as int64, or all as decimal strings when one is beyond int64."""
    try:
        return np.array(numbers, dtype=np.int64)
    except OverflowError:
        return np.array([str(number) for number in numbers], dtype=str)


def read_recbole_inter(
    path,
    *,
    sep: str = "\t",
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: Optional[str] = "timestamp",
    rating_col: str = "rating",
    encoding: str = "utf-8",
    min_rating=None,
    drop_duplicates: bool = True,
    k_core=None,
) -> InteractionData:
    """Read a RecBole atomic ``.inter`` file (tab-separated, header ``name:type`` fields).

    The ``user_id``, ``item_id`` and ``timestamp`` columns are found by name; each user's items
    are sorted by timestamp, ties kept in file order.  Quoted fields are unquoted.
    """
    check_options(path, min_rating, k_core)
    table = read_text_table(path, read_text(path, encoding), separator(path, sep))
    table.names = [name.split(":", 1)[0].strip() for name in table.names]
    log = _log_from_table(table, user_col, item_col, time_col, rating_col if min_rating is not None else None)
    return to_interactions(path, log, dataset_name(path), min_rating, drop_duplicates, k_core)


def read_csv(
    path,
    sep: Optional[str] = None,
    user_col: str = "user",
    item_col: str = "item",
    time_col: Optional[str] = "timestamp",
    *,
    columns: Optional[Sequence[str]] = None,
    rating_col: str = "rating",
    encoding: str = "utf-8",
    min_rating=None,
    drop_duplicates: bool = True,
    k_core=None,
) -> InteractionData:
    """Read delimited text: CSV, TSV, MovieLens ``u.data`` / ``ratings.dat`` and the like.

    The first non-blank line is the header, unless ``columns`` names the fields of a
    header-less file, one name per field (``"-"`` for a field to skip; fields named but not
    used are ignored).  ``sep=None`` guesses the separator: tab, ``::``, comma, semicolon,
    pipe or whitespace (comma first for ``.csv``, tab for ``.tsv``).  Items are sorted by
    ``time_col`` per user (ties in file order); ``time_col=None`` keeps the file order.
    Timestamps are numbers or ISO-8601 dates.
    """
    check_options(path, min_rating, k_core)
    names = check_column_names(path, columns) if columns is not None else None
    preferred = {"csv": ",", "tsv": "\t"}.get(format_and_compression(path)[0])
    table = read_text_table(path, read_text(path, encoding), separator(path, sep), names, preferred)
    log = _log_from_table(table, user_col, item_col, time_col, rating_col if min_rating is not None else None)
    return to_interactions(path, log, dataset_name(path), min_rating, drop_duplicates, k_core)


def read_parquet(
    path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: Optional[str] = "timestamp",
    rating_col: str = "rating",
    min_rating=None,
    drop_duplicates: bool = True,
    k_core=None,
) -> InteractionData:
    """Read a Parquet file's named columns (needs ``pip install pyarrow``)."""
    from .parquet import read_parquet_table

    check_options(path, min_rating, k_core)
    wanted = [user_col, item_col, time_col, rating_col if min_rating is not None else None]
    table = read_parquet_table(path, [name for name in wanted if name is not None])
    log = _log_from_table(table, user_col, item_col, time_col, wanted[-1])
    return to_interactions(path, log, dataset_name(path), min_rating, drop_duplicates, k_core)


def _log_from_table(
    table: Table, user_col: str, item_col: str, time_col: Optional[str], rating_col: Optional[str]
) -> Log:
    """Users in sorted id order, each one's rows sorted by time (ties in file order)."""
    user_ids, user_codes = sorted_ids_and_codes(_ids(table, user_col, "user_col"))
    item_ids, item_codes = sorted_ids_and_codes(_ids(table, item_col, "item_col"))
    times = ratings = None
    if time_col is not None:
        times = parse_times(table, table.column(time_col, "pass time_col (None keeps the file order)"))
        order = np.argsort(times, kind="stable")
        order = order[np.argsort(user_codes[order], kind="stable")]
    else:
        order = np.argsort(user_codes, kind="stable")
    if rating_col is not None:
        ratings = parse_numbers(table, table.column(rating_col, "min_rating needs it; pass rating_col"), "rating")
    return Log(
        user_ids=user_ids,
        user_codes=user_codes[order],
        item_ids=item_ids,
        item_codes=item_codes[order],
        times=None if times is None else times[order],
        ratings=None if ratings is None else ratings[order],
    )


def _ids(table: Table, name: str, option: str) -> np.ndarray:
    """A column of ids: tokens, integers if every one is; a numeric column (Parquet) must hold
    whole numbers."""
    values = table.column(name, f"pass {option}")
    if values.dtype.kind == "U":
        return integers_if_possible(values)
    if values.dtype.kind == "f":
        fractional = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if len(fractional):
            raise table.error(
                f"id {values[fractional[0]]!r} in column {name!r} is not a whole number", int(fractional[0])
            )
    if not _fits_int64(values):  # uint64 or float ids: decimal tokens, as the text readers keep them
        return _int64_or_strings([int(value) for value in values.tolist()])
    return values.astype(np.int64)


def _fits_int64(values: np.ndarray) -> bool:
    if len(values) == 0 or values.dtype.kind == "i":
        return True
    if values.dtype.kind == "u":
        return int(values.max()) <= np.iinfo(np.int64).max
    return bool((values >= -(2.0**63)).all() and (values < 2.0**63).all())  # 2**63 is exact in float64


def load_dataset(
    path,
    format: str = "auto",
    *,
    columns: Optional[Sequence[str]] = None,
    sep: Optional[str] = None,
    encoding: str = "utf-8",
    user_col: Optional[str] = None,
    item_col: Optional[str] = None,
    time_col: Optional[str] = "timestamp",
    rating_col: str = "rating",
    min_rating: Optional[float] = None,
    drop_duplicates: bool = True,
    k_core: Optional[int] = None,
) -> InteractionData:
    """Read ``path`` with the reader for its format: ``txt``, ``inter``, ``csv``, ``tsv`` or
    ``parquet``, each optionally compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``).

    ``format="auto"`` takes the format from the name (``ratings.csv.gz`` is csv); ``columns``
    makes any file but ``.inter``/``.parquet`` a header-less delimited table (so ``u.data``
    needs no ``format``).  ``user_col``/``item_col`` default to the format's names (``user_id``
    and ``item_id`` for ``.inter``, ``user`` and ``item`` otherwise).  Options that do not
    apply to the format are rejected, not ignored.
    """
    check_file(path)
    format = _resolve_format(path, format, columns)
    filters = dict(min_rating=min_rating, drop_duplicates=drop_duplicates, k_core=k_core)
    names = dict(time_col=time_col, rating_col=rating_col)
    names.update({option: name for option, name in (("user_col", user_col), ("item_col", item_col)) if name})
    if format == "txt":
        named = dict(user_col=user_col, item_col=item_col, time_col=time_col not in (None, "timestamp"))
        _reject(path, format, sep=sep, rating_col=rating_col != "rating", **named)
        return read_sequence_file(path, encoding=encoding, **filters)
    if format == "parquet":
        _reject(path, format, sep=sep, encoding=encoding != "utf-8")
        return read_parquet(path, **names, **filters)
    if format == "inter":
        return read_recbole_inter(path, sep=sep or "\t", encoding=encoding, **names, **filters)
    return read_csv(path, sep, columns=columns, encoding=encoding, **names, **filters)


def _resolve_format(path, format: str, columns) -> str:
    named_format = format_and_compression(path)[0]
    if format == "auto":
        if columns is not None and named_format not in ("inter", "parquet"):
            return "csv"
        format = named_format
    if format not in FORMATS:
        given = f"data format {format!r}" if format else "data format (the name has no extension)"
        compressed = ", ".join(COMPRESSIONS)
        message = (
            f"unknown {given}; expected one of {', '.join(FORMATS)}, each optionally compressed "
            f"({compressed}, e.g. ratings.csv.gz), or columns=... for a header-less delimited file"
        )
        raise DataFormatError(path, message)
    if columns is not None and format in ("txt", "inter", "parquet"):
        raise DataFormatError(
            path, f"columns: names the fields of a header-less delimited file; a {format} file has its own"
        )
    return format


def _reject(path, format: str, **given) -> None:
    for option, value in given.items():
        if value not in (None, False):
            raise DataFormatError(path, f"{option}: does not apply to {format} files")
