"""Target ranks and top-k over item chunks, never a users × items matrix.

Both walk the catalog in chunks of ``chunk_size`` items, so a batch of B users holds
``B × (chunk_size + k)`` scores whatever the catalog's size.  Every chunk is scored as wide as
the others, and at least 256 items wide (reaching back over items already seen), because the
width of a matrix product decides how BLAS sums it (below about 16 columns the CPU kernels
change): this keeps each score bit-identical to the one a single product over the whole
catalog gives, and so the ranks identical to :func:`~igrsr.eval.ranks_from_scores` on
materialized scores — ties included, which codebook items (LightRec) and counts (popularity)
have by the thousand.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .scores import MIN_PRODUCT_WIDTH, ItemScores

# Bytes of float32 scores one chunk of a batch may hold (ranking and top-k alike).
SCORE_BYTES_PER_CHUNK = 256 * 2**20

LOW_32_BITS = 2**32 - 1
# Below every key of a real score, -inf included: the key of an item left out.
EXCLUDED_KEY = torch.iinfo(torch.int64).min


def default_chunk_size(num_rows: int, num_items: int) -> int:
    """Items per chunk: as many as ``SCORE_BYTES_PER_CHUNK`` of float32 scores hold for ``num_rows`` users."""
    return max(1, min(num_items + 1, SCORE_BYTES_PER_CHUNK // (4 * max(num_rows, 1))))


def item_chunks(num_columns: int, chunk_size: int) -> Iterator[Tuple[slice, int, int]]:
    """``(window, start, stop)`` for chunks of new items ``start..stop-1`` covering
    ``0..num_columns-1``; each is scored over the items of ``window``, which holds them and is
    ``chunk_size`` wide, at least ``MIN_PRODUCT_WIDTH`` (as far as the catalog goes), so every
    product is summed as the whole catalog's is."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    width = min(max(chunk_size, MIN_PRODUCT_WIDTH), num_columns)
    for start in range(0, num_columns, chunk_size):
        first = min(start, num_columns - width)
        yield slice(first, first + width), start, min(start + chunk_size, num_columns)


class SeenItems:
    """Items to leave out, per row: ``(row, item)`` pairs sorted by item, so a chunk finds its
    own with two binary searches."""

    def __init__(self, rows: torch.Tensor, items: torch.Tensor, num_rows: int):
        order = torch.argsort(items, stable=True)
        self.rows, self.items, self.num_rows = rows[order], items[order], num_rows

    @classmethod
    def from_histories(cls, histories: Sequence[np.ndarray], device: torch.device) -> "SeenItems":
        """Every item of each row's history (a list of 1-d item arrays)."""
        lengths = torch.tensor([len(history) for history in histories], dtype=torch.long)
        rows = torch.repeat_interleave(torch.arange(len(histories)), lengths)
        items = torch.from_numpy(np.concatenate([np.asarray(h) for h in histories]).astype(np.int64, copy=False))
        return cls(rows.to(device), items.to(device), len(histories))

    @classmethod
    def from_padded(cls, ids: torch.Tensor) -> "SeenItems":
        """The non-zero ids of each row of a ``(B, L)`` tensor (0 is padding, never a candidate anyway)."""
        if ids.dim() != 2:
            raise ValueError(f"exclude must be (batch, length) item ids, got shape {tuple(ids.shape)}")
        rows, columns = torch.nonzero(ids, as_tuple=True)
        return cls(rows, ids[rows, columns].long(), len(ids))

    def mask(self, start: int, stop: int) -> torch.Tensor:
        """``(num_rows, stop - start)`` bool, True where the row's items include the item."""
        bounds = torch.tensor([start, stop], device=self.items.device)
        low, high = torch.searchsorted(self.items, bounds).tolist()
        mask = torch.zeros(self.num_rows, stop - start, dtype=torch.bool, device=self.items.device)
        mask[self.rows[low:high], self.items[low:high] - start] = True
        return mask


def streamed_ranks(
    scores: ItemScores, targets: torch.Tensor, seen: Optional[SeenItems] = None, chunk_size: Optional[int] = None
) -> torch.Tensor:
    """0-based rank of each row's target, ``(B,)``, as :func:`~igrsr.eval.ranks_from_scores` gives it.

    Candidates are items ``1..N`` less the row's ``seen`` items; the target always is one.  The
    rank counts the other candidates scoring at least as high as the target (ties count
    against it).  Only the targets' scores and one chunk are held at a time.
    """
    targets = targets.to(scores.device, torch.long)
    if targets.shape != (scores.num_rows,):
        raise ValueError(f"targets must have shape ({scores.num_rows},), got {tuple(targets.shape)}")
    if len(targets) and not (1 <= int(targets.min()) and int(targets.max()) <= scores.num_items):
        raise ValueError(f"targets must be item ids in 1..{scores.num_items}")
    target_scores = scores.of(targets)[:, None]
    ranks = torch.zeros(scores.num_rows, dtype=torch.long, device=scores.device)
    chunk_size = chunk_size or default_chunk_size(scores.num_rows, scores.num_items)
    for chunk, start, stop in chunk_scores(scores, chunk_size):
        if torch.isnan(chunk).any():
            raise ValueError("scores contain NaN")
        others = ~excluded(seen, scores, start, stop)
        in_chunk = torch.nonzero((targets >= start) & (targets < stop), as_tuple=True)[0]
        others[in_chunk, targets[in_chunk] - start] = False  # counted as "other" candidates only
        # int32 sums are faster on CPU and cannot overflow (at most chunk_size per row).
        ranks += ((chunk >= target_scores) & others).sum(dim=1, dtype=torch.int32)
    return ranks


def top_k(
    scores: ItemScores,
    k: int,
    exclude: Union[torch.Tensor, SeenItems, None] = None,
    chunk_size: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items of each row and their scores, ``(B, k)`` int64 and float32.

    ``scores``: an :class:`~igrsr.eval.scores.ItemScores` (a model's ``item_scores``).  Never
    padding (item 0), nor an item of ``exclude``: ``(B, L)`` item ids per row (0 ignored, so a
    left-padded history serves) or :class:`SeenItems`.  Best first; equal scores (compared as
    float32, ``-0.0 == 0.0``) in increasing item id, so the result does not depend on the chunk
    size or on ``torch.topk``'s order of ties.  A row with fewer than ``k`` candidates ends in
    item 0 with score ``-inf``.  A running top-k is merged with each chunk's: memory
    ``B × (chunk_size + k)``.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    seen = SeenItems.from_padded(exclude.to(scores.device)) if isinstance(exclude, torch.Tensor) else exclude
    best = torch.full((scores.num_rows, 0), EXCLUDED_KEY, dtype=torch.long, device=scores.device)
    chunk_size = chunk_size or default_chunk_size(scores.num_rows, scores.num_items)
    for chunk, start, stop in chunk_scores(scores, chunk_size):
        keys = torch.cat([best, chunk_best_keys(chunk, excluded(seen, scores, start, stop), start, k)], dim=1)
        best = keys.topk(min(k, keys.shape[1]), dim=1).values
    if best.shape[1] < k:
        best = torch.cat([best, best.new_full((len(best), k - best.shape[1]), EXCLUDED_KEY)], dim=1)
    return decode_keys(best)


def chunk_best_keys(chunk: torch.Tensor, left_out: torch.Tensor, start: int, k: int) -> torch.Tensor:
    """:func:`order_keys` of the ``k`` best items of a chunk but those ``left_out`` (in no
    particular order).

    A float ``topk`` of ``k + 1`` picks them; only a row whose (k+1)-th score equals its k-th
    (so the float ``topk`` may have picked any of the tied items) is picked again by the keys
    of its whole chunk, which are slower to select from.
    """
    masked = chunk.float().masked_fill(left_out, float("-inf"))
    values, columns = masked.topk(min(k + 1, chunk.shape[1]), dim=1)
    if torch.isnan(values[:, 0]).any():  # topk puts NaN first
        raise ValueError("scores contain NaN")
    k = min(k, chunk.shape[1])
    keys = order_keys(values[:, :k], columns[:, :k] + start)
    keys.masked_fill_(left_out.gather(1, columns[:, :k]), EXCLUDED_KEY)
    if values.shape[1] > k:
        spilled = torch.nonzero(values[:, k] == values[:, k - 1], as_tuple=True)[0]
        if len(spilled):
            ids = torch.arange(start, start + chunk.shape[1], device=chunk.device)
            whole = order_keys(masked[spilled], ids).masked_fill_(left_out[spilled], EXCLUDED_KEY)
            keys[spilled] = whole.topk(k, dim=1).values
    return keys


def chunk_scores(scores: ItemScores, chunk_size: int) -> Iterator[Tuple[torch.Tensor, int, int]]:
    """``(chunk, start, stop)``: the scores ``(B, stop - start)`` of items ``start..stop-1``."""
    for window, start, stop in item_chunks(scores.num_items + 1, chunk_size):
        yield scores.chunk(window.start, window.stop)[:, start - window.start : stop - window.start], start, stop


def excluded(seen: Optional[SeenItems], scores: ItemScores, start: int, stop: int) -> torch.Tensor:
    """``(B, stop - start)`` bool: True at the items of the chunk a row may not rank (padding, ``seen``)."""
    if seen is None:
        mask = torch.zeros(scores.num_rows, stop - start, dtype=torch.bool, device=scores.device)
    else:
        mask = seen.mask(start, stop)
    if start == 0:
        mask[:, 0] = True
    return mask


def order_keys(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordered as (float32 score, then lower item id): one unique key per item, so
    ``topk`` over keys has no ties to order.  ``ids`` has ``values``' shape or is one row of it."""
    bits = (values.float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0
    # Flipping all but the sign bit of a negative float orders the bit patterns as the floats.
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return ordered.long() * 2**32 + (LOW_32_BITS - ids)


def decode_keys(keys: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Item ids and float32 scores of :func:`order_keys` keys (excluded: item 0, ``-inf``)."""
    excluded = keys == EXCLUDED_KEY
    ordered = (keys >> 32).int()
    values = (ordered ^ ((ordered >> 31) & 0x7FFFFFFF)).view(torch.float32)
    items = LOW_32_BITS - (keys & LOW_32_BITS)
    return items.masked_fill(excluded, 0), values.masked_fill(excluded, float("-inf"))
