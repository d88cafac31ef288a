"""The in-memory form of an interaction log, and the id remapping every reader shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file and line."""

    def __init__(self, path, message: str, line: Optional[int] = None):
        location = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{location}: {message}")
        self.path = str(path)
        self.line = line


@dataclass
class InteractionData:
    """Users' item sequences in time order, with items remapped to ``1..num_items``.

    ``sequences[u]`` is an int64 array of new item ids for user ``user_ids[u]`` (its original
    id). ``item_ids[i]`` is the original id of new item ``i``; ``item_ids[0]`` is a placeholder
    for the padding id 0 (``""`` when the ids are strings). New ids follow the sorted order of
    the original ids (numeric when every id is an integer that fits int64, else as strings), so
    the mapping is deterministic and files whose ids are already ``1..N`` keep them.
    ``preprocessing`` records what the reader filtered (see :mod:`igrsr.data.preprocess`),
    e.g. ``{"duplicates_dropped": 3}``; empty when nothing was done.  ``source`` says how to
    read the data again (the file and the reader options, :func:`igrsr.data.load_data` sets it).
    """

    sequences: list[np.ndarray]
    num_items: int
    user_ids: list
    item_ids: np.ndarray
    name: str
    preprocessing: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(sequence) for sequence in self.sequences))


def integers_if_possible(tokens: np.ndarray) -> np.ndarray:
    """Return string ids as int64 when every one is a plain integer, else unchanged.

    Integer ids then sort numerically ("9" before "10"), so a RecBole or CSV export of a
    ``.txt`` file remaps exactly like it. Tokens such as "007" stay strings: turning them into
    7 could merge two distinct ids; so do all when one is beyond int64.
    """
    numbers = plain_integers(tokens)
    return tokens if numbers is None else numbers


def sorted_ids_and_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)``, several times faster for strings.

    Strings are numbered through a dict of the distinct ones rather than by sorting every
    row (numpy sorts strings slowly); Python orders str by code point, as numpy does.
    """
    if ids.dtype.kind != "U":
        unique, codes = np.unique(ids, return_inverse=True)
        return unique, codes.astype(np.int64)
    tokens = ids.tolist()
    unique = sorted(set(tokens))
    code_of = dict(zip(unique, range(len(unique))))
    codes = np.fromiter(map(code_of.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    return np.array(unique, dtype=ids.dtype), codes


# Tokens this long may not fit int64; shorter ones always do.
_SAFE_DIGITS = 18


def plain_integers(tokens: np.ndarray) -> Optional[np.ndarray]:
    """``tokens`` (a str array) as int64 if every one is a plain decimal integer (``-?(0|[1-9]
    [0-9]*)``, within int64), else ``None``.

    Digits are read column by column from the array's code points, in numpy (parsing with
    ``astype`` is several times slower and accepts forms such as "007" or "+7").
    """
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.int64)
    width = tokens.dtype.itemsize // 4
    if width > _SAFE_DIGITS:
        try:
            numbers = tokens.astype(np.int64)
        except (ValueError, OverflowError):
            return None
        return numbers if np.array_equal(numbers.astype(str), tokens) else None
    code_points = np.ascontiguousarray(tokens).view(np.uint32).reshape(len(tokens), width)
    lengths = np.char.str_len(tokens)
    negative = code_points[:, 0] == ord("-")
    first_digit = code_points[np.arange(len(tokens)), negative.astype(np.intp)] if width > 1 else code_points[:, 0]
    leading_zero = (first_digit == ord("0")) & ((lengths > 1 + negative) | negative)
    if (lengths <= negative).any() or leading_zero.any():
        return None
    numbers = np.zeros(len(tokens), dtype=np.int64)
    for column in range(width):
        digit = code_points[:, column].astype(np.int64) - ord("0")
        in_number = (lengths > column) & ~(negative & (column == 0))
        if ((digit < 0) | (digit > 9))[in_number].any():
            return None
        numbers = np.where(in_number, numbers * 10 + digit, numbers)
    return np.where(negative, -numbers, numbers)
