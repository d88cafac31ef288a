"""Full-ranking evaluation split over the ranks of a multi-process run, and in reduced precision.

Each rank ranks a contiguous block of users with :func:`model_ranks` (the one ranking path);
the blocks are gathered in user order, so the metrics are those of one process over every
user, never an average of per-rank metrics.
"""

from dataclasses import replace
from typing import Optional

import torch
from torch import nn

from ..data.split import Split
from ..distributed import gather_rows, rank, user_range, world_size
from .full_ranking import model_ranks
from .scores import ItemScores


class BlockScorer(nn.Module):
    """A model seen by :func:`model_ranks` over a block of users: the block's local user index
    becomes the global user id, and scores are computed under ``autocast_dtype`` (if given)."""

    def __init__(self, model: nn.Module, first_user: int, autocast_dtype: Optional[torch.dtype]):
        super().__init__()
        self.model = model
        self.max_len = model.max_len
        self.first_user = first_user
        self.autocast_dtype = autocast_dtype
        self.train(model.training)

    def item_scores(self, history: torch.Tensor, users: torch.Tensor) -> ItemScores:
        with autocast(history.device, self.autocast_dtype):
            scores = self.model.item_scores(history, users + self.first_user)
        return scores if self.autocast_dtype is None else AutocastScores(scores, self.autocast_dtype)


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


class AutocastScores(ItemScores):
    """``scores`` computed chunk by chunk under autocast in ``dtype``, handed on in float32, so
    the ranks are always counted in float32."""

    def __init__(self, scores: ItemScores, dtype: torch.dtype):
        self.scores, self.dtype = scores, dtype
        self.num_rows, self.num_items, self.device = scores.num_rows, scores.num_items, scores.device

    def chunk(self, start: int, stop: int) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            return self.scores.chunk(start, stop).float()

    def of(self, items: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            return self.scores.of(items).float()


def user_block(split: Split, start: int, stop: int) -> Split:
    """The users ``start..stop-1`` of ``split`` as a split of their own."""
    return replace(
        split,
        train=split.train[start:stop],
        valid_history=split.valid_history[start:stop],
        valid_target=split.valid_target[start:stop],
        test_history=split.test_history[start:stop],
        test_target=split.test_target[start:stop],
        user_index=split.user_index[start:stop],
    )


def shared_model_ranks(
    model: nn.Module,
    split: Split,
    part: str,
    *,
    device: str = "cpu",
    batch_size: Optional[int] = None,
    progress: bool = False,
    autocast_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """What :func:`model_ranks` returns (same arguments), each rank ranking its block of users;
    every rank gets all the ranks.  ``autocast_dtype``: the precision of the scores."""
    start, stop = user_range(len(split.train), rank(), world_size())
    scorer = BlockScorer(model, start, autocast_dtype)
    ranks = model_ranks(scorer, user_block(split, start, stop), part, device=device, batch_size=batch_size,
                        progress=progress)  # fmt: skip
    return gather_rows(ranks.to(device)).cpu()
