"""Scores of a batch of users against any slice of the catalog, computed when asked for.

A model's :meth:`~igrsr.models.SequentialRecommender.item_scores` returns one of these, so
ranking and top-k stream over item chunks instead of holding a users × items matrix.  Item
ids run from 0 (padding, whose score means nothing) to ``num_items``.
"""

from __future__ import annotations

from typing import Optional

import torch

# Below about 16 columns the CPU BLAS switches to other kernels whose sums differ from the
# wide product's in the last bit; scoring single items in blocks at least this wide keeps
# their scores bit-identical to the same items' in a catalog chunk.  That holds on one thread;
# with several, the BLAS may split products of different widths differently, and a score can
# come out one ulp apart between chunkings (only ties between equal item vectors then move).
MIN_PRODUCT_WIDTH = 256


class ItemScores:
    """Scores of ``num_rows`` users; subclasses implement :meth:`chunk` and :meth:`of`.

    Both must give bit-identical values for the same (user, item): a target's rank compares
    its score from :meth:`of` with the other items' scores from :meth:`chunk`.
    """

    num_rows: int
    num_items: int
    device: torch.device

    def chunk(self, start: int, stop: int) -> torch.Tensor:
        """``(num_rows, stop - start)`` scores of items ``start..stop-1``."""
        raise NotImplementedError

    def of(self, items: torch.Tensor) -> torch.Tensor:
        """``(num_rows,)``: row ``i``'s score of item ``items[i]``."""
        raise NotImplementedError


class TableScores(ItemScores):
    """``query @ table.T + bias``: user vectors ``query`` ``(B, d)`` against an item table
    ``(num_items + 1, d)`` (row 0 padding) and an optional per-item ``bias`` ``(num_items + 1,)``;
    every model with an inner-product output layer."""

    def __init__(self, query: torch.Tensor, table: torch.Tensor, bias: Optional[torch.Tensor] = None):
        if query.dim() != 2 or table.dim() != 2 or query.shape[1] != table.shape[1]:
            raise ValueError(f"query (B, d) and table (N + 1, d) differ: {tuple(query.shape)}, {tuple(table.shape)}")
        if bias is not None and bias.shape != table.shape[:1]:
            raise ValueError(f"bias must have shape ({table.shape[0]},), got {tuple(bias.shape)}")
        self.query, self.table, self.bias = query, table, bias
        # shape[0], not len(): a batch dimension that torch.export keeps symbolic.
        self.num_rows, self.num_items, self.device = query.shape[0], table.shape[0] - 1, query.device

    def chunk(self, start: int, stop: int) -> torch.Tensor:
        scores = self.query @ self.table[start:stop].T
        return scores if self.bias is None else scores + self.bias[start:stop]

    def of(self, items: torch.Tensor) -> torch.Tensor:
        # Blocks of rows times their own items, widened with zero columns to the width the
        # chunks have, so each diagonal entry is summed as the chunks sum it; the last block
        # reaches back to stay as tall as the others.
        scores = self.query.new_empty(self.num_rows)
        for start in range(0, self.num_rows, MIN_PRODUCT_WIDTH):
            stop = min(start + MIN_PRODUCT_WIDTH, self.num_rows)
            rows = slice(max(0, stop - MIN_PRODUCT_WIDTH), stop)
            columns = self.table[items[rows]]
            widen = max(0, min(MIN_PRODUCT_WIDTH, self.num_items + 1) - len(columns))
            columns = torch.cat([columns, columns.new_zeros(widen, columns.shape[1])])
            scores[rows] = torch.diagonal(self.query[rows] @ columns.T)[: len(columns) - widen]
        return scores if self.bias is None else scores + self.bias[items]


class MaterializedScores(ItemScores):
    """Scores already computed for the whole catalog, ``(B, num_items + 1)`` (a view such as
    ``counts.expand(B, -1)`` costs no memory): the fallback for a model that cannot split."""

    def __init__(self, scores: torch.Tensor):
        if scores.dim() != 2 or scores.shape[1] < 2:
            raise ValueError(f"scores must have shape (batch, num_items + 1), got {tuple(scores.shape)}")
        self.scores = scores
        self.num_rows, self.num_items, self.device = scores.shape[0], scores.shape[1] - 1, scores.device

    def chunk(self, start: int, stop: int) -> torch.Tensor:
        return self.scores[:, start:stop]

    def of(self, items: torch.Tensor) -> torch.Tensor:
        return self.scores.gather(1, items[:, None])[:, 0]
