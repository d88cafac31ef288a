"""Training examples as torch datasets, and left padding.

Sequences are stored once, concatenated into one int64 array with per-sequence offsets;
examples only index into it, and each example is padded when it is fetched.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate


def pad_left(sequences: Sequence[np.ndarray], max_len: int) -> torch.Tensor:
    """Stack the last ``max_len`` items of each sequence into a ``(B, max_len)`` LongTensor.

    Shorter sequences are left-padded with 0, so the most recent item is always in the last
    column; an empty sequence gives a row of zeros.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else lengths
    ends = np.cumsum(lengths)
    return torch.from_numpy(left_padded_windows(items, ends, ends - lengths, max_len))


def left_padded_windows(items: np.ndarray, ends: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``(B, width)`` int64: row ``b`` holds ``items[starts[b]:ends[b]]``'s last ``width`` entries,
    left-padded with 0 (one gather over the packed ``items``, no per-row Python work)."""
    positions = ends[:, None] - width + np.arange(width)[None, :]
    real = positions >= starts[:, None]
    gathered = items[np.where(real, positions, 0)] if len(items) else np.zeros(positions.shape, dtype=np.int64)
    return np.where(real, gathered, 0)


def trim_left_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the leading columns that are padding in every row of ``batch["history"]``.

    Exact for every model here (left padding never changes outputs), and it makes a batch of
    short histories cost what its longest history costs, not ``max_len``.  Every 2-D tensor of
    the batch (``history`` and, for all-position training, ``targets``) is cut alike.
    """
    history = batch["history"]
    real_columns = (history > 0).any(dim=0).nonzero()
    first = int(real_columns[0]) if len(real_columns) else history.shape[1] - 1
    return {name: value[:, first:] if value.dim() == 2 else value for name, value in batch.items()}


def collate_trimmed(examples: List[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``default_collate`` followed by :func:`trim_left_padding`."""
    return trim_left_padding(default_collate(examples))


class LengthBucketSampler(Sampler[List[int]]):
    """Random batches of examples of similar history length (so trimming pays off).

    Each epoch shuffles the examples, sorts them by length within windows of
    ``window_batches`` batches, cuts the windows into batches and shuffles the batches:
    batches stay random across the data while their rows have similar lengths.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        generator: Optional[torch.Generator] = None,
        window_batches: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.generator = generator
        self.window = batch_size * window_batches

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[List[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        batches = []
        for start in range(0, len(order), self.window):
            window = order[start : start + self.window]
            window = window[np.argsort(self.lengths[window], kind="stable")]
            batches += [window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index].tolist()


class _ConcatenatedSequences(Dataset):
    """Holds the training sequences back to back, and the user index of each."""

    def __init__(self, train_sequences: Sequence[np.ndarray], max_len: int, user_ids=None):
        if max_len < 1:
            raise ValueError(f"max_len must be positive, got {max_len}")
        self.max_len = max_len
        self._lengths = np.array([len(sequence) for sequence in train_sequences], dtype=np.int64)
        self._starts = np.cumsum(self._lengths) - self._lengths
        self._items = (
            np.concatenate(train_sequences).astype(np.int64, copy=False)
            if len(train_sequences)
            else np.zeros(0, dtype=np.int64)
        )
        self._users = _user_indices(user_ids, len(train_sequences))

    def history_lengths(self) -> np.ndarray:
        """Length of each example's (unpadded, at most ``max_len``) history."""
        return self._history_lengths

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """The examples at ``indices`` as one batch trimmed to its longest history: what
        ``collate_trimmed([self[i] for i in indices])`` gives, built in a few array operations."""
        indices = np.asarray(indices, dtype=np.int64)
        return self._examples(indices, int(self._history_lengths[indices].max()))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: value[0] for name, value in self._examples(np.array([index]), self.max_len).items()}

    def _examples(self, indices: np.ndarray, width: int) -> dict[str, torch.Tensor]:
        """The examples at ``indices``, histories left-padded to ``width`` columns."""
        raise NotImplementedError


def _user_indices(user_ids: Optional[Sequence[int]], num_sequences: int) -> np.ndarray:
    if user_ids is None:
        return np.arange(num_sequences, dtype=np.int64)
    users = np.asarray(user_ids, dtype=np.int64)
    if users.shape != (num_sequences,):
        raise ValueError(f"user_ids must have one entry per sequence ({num_sequences}), got shape {users.shape}")
    return users


class PrefixExamples(_ConcatenatedSequences):
    """One example per (history prefix -> next item) of every training sequence.

    A sequence of length L gives L - 1 examples, with prefixes of length 1..L-1 (docs/design.md §1:
    the loss is at the final position of each prefix). Each example is
    ``{"history": LongTensor(max_len) left-padded, "target": LongTensor(), "user": LongTensor()}``,
    where ``user`` is ``user_ids[i]`` for sequence ``i`` (default ``i``).
    """

    def __init__(self, train_sequences: Sequence[np.ndarray], max_len: int, user_ids=None):
        super().__init__(train_sequences, max_len, user_ids)
        targets_per_sequence = np.maximum(self._lengths - 1, 0)
        self._example_sequence = np.repeat(np.arange(len(self._lengths)), targets_per_sequence)
        first_example = np.cumsum(targets_per_sequence) - targets_per_sequence
        rank_in_sequence = np.arange(len(self._example_sequence)) - first_example[self._example_sequence]
        # The first target of a sequence is its second item.
        self._target_position = self._starts[self._example_sequence] + 1 + rank_in_sequence
        self._history_lengths = np.minimum(self._target_position - self._starts[self._example_sequence], self.max_len)

    def __len__(self) -> int:
        return len(self._example_sequence)

    def _examples(self, indices: np.ndarray, width: int) -> dict[str, torch.Tensor]:
        sequence = self._example_sequence[indices]
        target_position = self._target_position[indices]
        history_start = np.maximum(self._starts[sequence], target_position - self.max_len)
        return {
            "history": torch.from_numpy(left_padded_windows(self._items, target_position, history_start, width)),
            "target": torch.from_numpy(self._items[target_position]),
            "user": torch.from_numpy(self._users[sequence]),
        }


class SequenceExamples(_ConcatenatedSequences):
    """One example per training window, for training on all positions at once (SASRec).

    ``{"history": window[:-1], "targets": window[1:], "user": idx}``, both left-padded to
    ``max_len`` and aligned (the target of ``history[j]`` is ``targets[j]``; 0 where padded).
    A window is at most ``max_len + 1`` items of a sequence; by default one per sequence, its
    last items (as SASRec), so the older items of a long sequence are never targets.  With
    ``every_window`` a long sequence is cut into windows from its end, consecutive ones sharing
    one item, so every item after the first is a target exactly once per epoch (as it is for
    the models trained on every prefix).  Sequences shorter than 2 give no example.
    """

    def __init__(self, train_sequences: Sequence[np.ndarray], max_len: int, user_ids=None, every_window=False):
        super().__init__(train_sequences, max_len, user_ids)
        step = max_len if every_window else np.iinfo(np.int64).max
        ends = [np.arange(length, 1, -step) for length in self._lengths]
        self._window_sequence = np.repeat(np.arange(len(ends)), [len(e) for e in ends])
        self._window_end = np.concatenate(ends).astype(np.int64) if ends else np.zeros(0, dtype=np.int64)
        self._history_lengths = np.minimum(self._window_end - 1, self.max_len)

    def __len__(self) -> int:
        return len(self._window_sequence)

    def _examples(self, indices: np.ndarray, width: int) -> dict[str, torch.Tensor]:
        sequence = self._window_sequence[indices]
        window_end = self._starts[sequence] + self._window_end[indices]  # one past the window's last item
        window_start = self._starts[sequence] + np.maximum(self._window_end[indices] - self.max_len - 1, 0)
        return {
            "history": torch.from_numpy(left_padded_windows(self._items, window_end - 1, window_start, width)),
            "targets": torch.from_numpy(left_padded_windows(self._items, window_end, window_start + 1, width)),
            "user": torch.from_numpy(self._users[sequence]),
        }
