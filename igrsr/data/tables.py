"""Delimited text as named columns: the separator, fields, and parsing each column's values.

Fields are cut by C-level string operations over the whole text (no Python loop per field),
and only the columns a reader asks for become arrays.  Quotes are honoured (``"1"`` is ``1``,
``"a, b"`` one field) for one-character separators; a quoted file goes through :mod:`csv`.
"""

from __future__ import annotations

import csv
import io
from functools import partial
from itertools import chain, islice, repeat
from typing import Callable, Optional, Sequence

import numpy as np

from .interactions import DataFormatError, plain_integers

WHITESPACE = " "  # as a separator: any run of spaces and tabs
SEPARATOR_NAMES = {
    "\t": "tab",
    "::": "'::'",
    ",": "comma",
    ";": "semicolon",
    "|": "pipe",
    WHITESPACE: "whitespace",
}
_ALIASES = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": WHITESPACE,
    "whitespace": WHITESPACE,
}
SKIPPED = "-"  # a name in ``columns`` for a field that is read past


def separator(path, sep: Optional[str]) -> Optional[str]:
    """Validate ``sep``: a string such as ``","`` or ``"::"``, a name (``"tab"``, ``"comma"``,
    ``"semicolon"``, ``"pipe"``, ``"whitespace"``), or ``None`` to guess it from the file."""
    if sep is None:
        return None
    if not isinstance(sep, str) or not sep or "\n" in sep or '"' in sep:
        raise DataFormatError(path, f"sep: expected a non-empty separator without newline or quote, got {sep!r}")
    sep = _ALIASES.get(sep.lower(), sep)
    return WHITESPACE if sep.isspace() and sep != "\t" else sep


def check_column_names(path, columns: Sequence[str]) -> list[str]:
    """Validate ``columns`` (the names of a header-less file's fields, ``"-"`` for one to skip)."""
    if isinstance(columns, str) or not all(isinstance(name, str) for name in columns):
        raise DataFormatError(path, f"columns: expected a sequence of column names, got {columns!r}")
    names = [name.strip() for name in columns]
    if len(names) < 2 or "" in names:
        raise DataFormatError(path, f"columns: expected at least two non-empty names, got {list(columns)!r}")
    repeated = sorted({name for name in names if name != SKIPPED and names.count(name) > 1})
    if repeated:
        raise DataFormatError(path, f"columns: {repeated[0]!r} is named twice in {names}; name a field to skip '-'")
    return names


class Table:
    """Named columns of rows; ``column`` returns a column's stripped, non-empty values."""

    def __init__(self, path, names: list[str]):
        self.path = path
        self.names = names

    def error(self, message: str, row: Optional[int] = None) -> DataFormatError:
        """An error at data row ``row`` (0-based), or at the file."""
        raise NotImplementedError

    def raw_column(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def column(self, name: str, hint: str = "") -> np.ndarray:
        if name not in self.names or name == SKIPPED:
            message = f"missing column {name!r}; columns are {[n for n in self.names if n != SKIPPED]}"
            raise self.error(message + (f"; {hint}" if hint else ""), None)
        if self.names.count(name) > 1:
            raise self.error(f"column {name!r} appears twice; columns are {self.names}", None)
        values = self.raw_column(self.names.index(name))
        if values.dtype.kind == "U":
            values = np.char.strip(values)
            empty = np.flatnonzero(np.char.str_len(values) == 0)
            if len(empty):
                raise self.error(f"empty value in column {name!r}", int(empty[0]))
        return values


class TextTable(Table):
    """Fields of a delimited text, ``len(names)`` per row, back to back in ``fields``."""

    def __init__(self, path, names, fields: list[str], line_numbers: np.ndarray, header_line: Optional[int]):
        super().__init__(path, names)
        self.fields, self.line_numbers, self.header_line = fields, line_numbers, header_line

    def error(self, message, row=None):
        line = self.header_line if row is None else int(self.line_numbers[row])
        return DataFormatError(self.path, message, line)

    def raw_column(self, index):
        return np.array(self.fields[index :: len(self.names)], dtype=str)


def read_text_table(path, text: str, sep: Optional[str], columns=None, preferred: Optional[str] = None) -> TextTable:
    """Split ``text`` into rows of fields; the first non-blank line is the header unless
    ``columns`` names the fields.  Blank lines are skipped; every other line must have as many
    fields as the header (or ``columns``) names."""
    lines = text.split("\n")
    first_two = list(islice((i for i, line in enumerate(lines) if line.strip()), 2))
    if not first_two:
        raise DataFormatError(
            path, "no interactions found: the file is empty" if columns else "empty file: no header row"
        )
    sep = sep or guess_separator(path, text, first_two[0] + 1, len(columns) if columns else None, preferred)
    if _quoted(text, sep):
        rows, line_numbers = _csv_rows(path, text, sep)
        counts = np.fromiter(map(len, rows), np.int64, len(rows))
    else:
        rows, line_numbers = None, np.arange(1, len(lines) + 1)
        counts = _field_counts(lines, sep)
    data = np.flatnonzero(~_blank(counts, lines if rows is None else rows))
    if columns is None:
        header_row, data = int(data[0]), data[1:]
        header = _split(lines[header_row], sep) if rows is None else rows[header_row]
        names, header_line, expected = (
            [name.strip() for name in header],
            int(line_numbers[header_row]),
            "the header has",
        )
    else:
        names, header_line, expected = list(columns), None, "columns names"
        _check_not_a_header(path, lines[data[0]] if rows is None else rows[data[0]], names, sep, line_numbers[data[0]])
    wrong = data[counts[data] != len(names)]
    if len(wrong):
        message = (
            f"row has {_fields(counts[wrong[0]])} but {expected} {len(names)} "
            f"(separator: {SEPARATOR_NAMES.get(sep, repr(sep))})"
        )
        raise DataFormatError(path, message, int(line_numbers[wrong[0]]))
    if not len(data):
        raise DataFormatError(
            path, "no interactions found" + (": the file has a header but no rows" if columns is None else "")
        )
    return TextTable(path, names, _flat_fields(lines, rows, data, sep), line_numbers[data], header_line)


def _check_not_a_header(path, first, names: list[str], sep: str, line: int) -> None:
    """A header read as data would become an interaction (user "user", item "item")."""
    fields = [field.strip().lower() for field in (_split(first, sep) if isinstance(first, str) else first)]
    if sum(field == name.lower() for field, name in zip(fields, names) if name != SKIPPED) >= 2:
        message = "looks like a header; columns= is for files without one (pass user_col=... to rename)"
        raise DataFormatError(path, message, int(line))


def _fields(count: int) -> str:
    return f"{count} field" + ("s" if count != 1 else "")


def _quoted(text: str, sep: str) -> bool:
    return len(sep) == 1 and sep != WHITESPACE and '"' in text


def guess_separator(path, text: str, first_line: int, width: Optional[int], preferred: Optional[str]) -> str:
    """The first of tab, '::', comma, semicolon, pipe and whitespace (``preferred`` first) that
    cuts the first row into ``width`` fields, or (with a header) that cuts the header and the
    next row alike into at least two."""
    head = text[: 1 << 16]
    candidates = sorted(SEPARATOR_NAMES, key=lambda candidate: candidate != preferred)
    for candidate in candidates:
        counts = {len(row) for row in _first_rows(head, candidate, 1 if width else 2)}
        if (counts == {width}) if width else (len(counts) == 1 and counts.pop() >= 2):
            return candidate
    tried = ", ".join(SEPARATOR_NAMES[c] for c in candidates)
    wanted = (
        f"line {first_line} into the {width} fields columns names" if width else "the header and the next line alike"
    )
    raise DataFormatError(path, f"cannot guess the separator: none of {tried} cuts {wanted}; pass sep", first_line)


def _first_rows(head: str, sep: str, count: int) -> list[list[str]]:
    if _quoted(head, sep):
        rows = csv.reader(io.StringIO(head, newline=""), delimiter=sep, skipinitialspace=True)
    else:
        rows = (_split(line, sep) for line in head.split("\n"))
    try:
        return list(islice((row for row in rows if "".join(row).strip()), count))
    except csv.Error:
        return []


def _split(line: str, sep: str) -> list[str]:
    return line.split() if sep == WHITESPACE else line.split(sep)


def _csv_rows(path, text: str, sep: str) -> tuple[list[list[str]], np.ndarray]:
    """Rows with quotes removed, and the line each ends on (a quoted field may hold a newline)."""
    reader = _csv_reader(text, sep)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise DataFormatError(path, f"bad quoting: {error}", reader.line_num) from None
    if reader.line_num == len(rows):  # one row per line: no field holds a newline
        return rows, np.arange(1, len(rows) + 1)
    reader, line_numbers = _csv_reader(text, sep), []
    for _ in reader:
        line_numbers.append(reader.line_num)
    return rows, np.array(line_numbers, dtype=np.int64)


def _csv_reader(text: str, sep: str):
    return csv.reader(io.StringIO(text, newline=""), delimiter=sep, skipinitialspace=True, strict=True)


def _field_counts(lines: list[str], sep: str) -> np.ndarray:
    if sep == WHITESPACE:
        return np.fromiter(map(len, map(str.split, lines)), np.int64, len(lines))
    return np.fromiter(map(str.count, lines, repeat(sep)), np.int64, len(lines)) + 1


def _blank(counts: np.ndarray, rows_or_lines) -> np.ndarray:
    """Rows that are empty or only whitespace (they can only have at most one field)."""
    blank = counts == 0
    for i in np.flatnonzero(counts == 1):
        row = rows_or_lines[i]
        blank[i] = not (row if isinstance(row, str) else "".join(row)).strip()
    return blank


def _flat_fields(lines: list[str], rows, data: np.ndarray, sep: str) -> list[str]:
    contiguous = len(data) == data[-1] - data[0] + 1
    if rows is not None:
        return list(chain.from_iterable(rows[data[0] : data[-1] + 1] if contiguous else (rows[i] for i in data)))
    kept = lines[data[0] : data[-1] + 1] if contiguous else [lines[i] for i in data]
    if sep == WHITESPACE:
        return " ".join(kept).split()
    return sep.join(kept).split(sep)


# --- column values ---------------------------------------------------------------------------

# Timestamp formats, tried in this order on the first timestamp; every other must match it.
_TIME_FORMATS = {np.dtype(np.float64): "a number", np.dtype("datetime64[ns]"): "an ISO-8601 date"}


def parse_times(table: Table, values: np.ndarray) -> np.ndarray:
    """Timestamps as numbers (int64 when all are integers, else float64), or (when the first
    is not a number) ISO-8601 dates as int64 nanoseconds."""
    if values.dtype.kind != "U":
        return values if values.dtype.kind == "i" else _finite(table, values, values.astype(np.float64), "timestamp")
    integers = plain_integers(values)
    if integers is not None:
        return integers
    dtype = next((dtype for dtype in _TIME_FORMATS if _parses(_as(dtype), values[0])), None)
    if dtype is None:
        raise table.error(f"timestamp {str(values[0])!r} is neither a number nor an ISO-8601 date", 0)
    times = _convert(table, values, dtype, f"timestamp {{!r}} is not {_TIME_FORMATS[dtype]}")
    if dtype.kind == "M":
        if np.isnat(times).any():
            bad = int(np.flatnonzero(np.isnat(times))[0])
            raise table.error(f"timestamp {str(values[bad])!r} is missing or infinite", bad)
        return times.view(np.int64)
    return _finite(table, values, times, "timestamp")


def parse_numbers(table: Table, values: np.ndarray, what: str) -> np.ndarray:
    """A column of finite numbers (ratings) as float64."""
    if values.dtype.kind == "U":
        numbers = _convert(table, values, np.dtype(np.float64), f"{what} {{!r}} is not a number")
    else:
        numbers = values.astype(np.float64)
    return _finite(table, values, numbers, what)


def _convert(table: Table, values: np.ndarray, dtype: np.dtype, message: str) -> np.ndarray:
    try:
        return values.astype(dtype)
    except ValueError:
        bad = next(i for i, value in enumerate(values) if not _parses(_as(dtype), value))
        raise table.error(message.format(str(values[bad])), bad) from None


def _finite(table: Table, values: np.ndarray, numbers: np.ndarray, what: str) -> np.ndarray:
    missing = ~np.isfinite(numbers)
    if missing.any():
        bad = int(np.flatnonzero(missing)[0])
        raise table.error(f"{what} {str(values[bad])!r} is missing or infinite", bad)
    return numbers


def _as(dtype: np.dtype) -> Callable:
    return partial(np.asarray, dtype=dtype)


def _parses(parse: Callable, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True
