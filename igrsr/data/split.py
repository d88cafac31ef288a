"""Leave-one-out split (docs/design.md §2): last item for test, second-last for validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interactions import InteractionData


@dataclass
class Split:
    """Per kept user, in the same order everywhere.

    ``train[u]`` and ``valid_history[u]`` are ``seq[:-2]``, ``valid_target[u]`` is ``seq[-2]``,
    ``test_history[u]`` is ``seq[:-1]`` and ``test_target[u]`` is ``seq[-1]``.
    ``user_index[u]`` is the user's index in ``data.sequences``. The arrays are views of the
    data's sequences: copy before changing them in place.
    """

    train: list[np.ndarray]
    valid_history: list[np.ndarray]
    valid_target: np.ndarray
    test_history: list[np.ndarray]
    test_target: np.ndarray
    user_index: np.ndarray
    num_items: int
    skipped_users: int

    @property
    def num_users(self) -> int:
        return len(self.train)

    def item_counts(self) -> np.ndarray:
        """How often each item id occurs in the training sequences, ``(num_items + 1,)`` (0: padding)."""
        items = np.concatenate(self.train) if self.train else np.zeros(0, dtype=np.int64)
        return np.bincount(items, minlength=self.num_items + 1).astype(np.int64)


def leave_one_out(data: InteractionData, min_length: int = 3) -> Split:
    """Split every user with at least ``min_length`` items; shorter users are skipped.

    The number skipped is printed once and kept in ``Split.skipped_users``.
    """
    if min_length < 3:
        raise ValueError(f"min_length must be at least 3 (train, validation, test), got {min_length}")
    lengths = np.array([len(sequence) for sequence in data.sequences], dtype=np.int64)
    user_index = np.flatnonzero(lengths >= min_length)
    if len(user_index) == 0:
        raise ValueError(f"no user of {data.name!r} has at least {min_length} interactions")
    skipped_users = data.num_users - len(user_index)
    if skipped_users:
        print(f"skipped {skipped_users} users with fewer than {min_length} interactions")
    kept = [data.sequences[i] for i in user_index]
    return Split(
        train=[sequence[:-2] for sequence in kept],
        valid_history=[sequence[:-2] for sequence in kept],
        valid_target=np.array([sequence[-2] for sequence in kept], dtype=np.int64),
        test_history=[sequence[:-1] for sequence in kept],
        test_target=np.array([sequence[-1] for sequence in kept], dtype=np.int64),
        user_index=user_index,
        num_items=data.num_items,
        skipped_users=skipped_users,
    )
