"""The in-memory form of an interaction log, and the id remapping every reader shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

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
    for the padding id 0. New ids follow the sorted order of the original ids, so the mapping is
    deterministic and files whose ids are already ``1..N`` keep them.
    """

    sequences: list[np.ndarray]
    num_items: int
    user_ids: list
    item_ids: np.ndarray
    name: str

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
    7 could merge two distinct ids.
    """
    try:
        numbers = tokens.astype(np.int64)
    except (ValueError, OverflowError):
        return tokens
    return numbers if np.array_equal(numbers.astype(str), tokens) else tokens


def build_interactions(
    path,
    user_ids: Sequence,
    items: np.ndarray,
    lengths: np.ndarray,
    name: Optional[str] = None,
) -> InteractionData:
    """Remap original item ids to ``1..N`` and cut the flat item array into user sequences.

    ``items`` holds every user's items back to back, in the order of ``user_ids``, and
    ``lengths`` how many belong to each user.
    """
    if len(items) == 0:
        raise DataFormatError(path, "no interactions found")
    original_ids, new_ids = np.unique(items, return_inverse=True)
    new_ids = new_ids.astype(np.int64) + 1
    sequences = np.split(new_ids, np.cumsum(lengths)[:-1])
    padding_placeholder = "" if original_ids.dtype.kind in "US" else 0
    item_ids = np.concatenate([np.array([padding_placeholder], dtype=original_ids.dtype), original_ids])
    return InteractionData(
        sequences=sequences,
        num_items=len(original_ids),
        user_ids=list(user_ids),
        item_ids=item_ids,
        name=name if name is not None else Path(path).stem,
    )
