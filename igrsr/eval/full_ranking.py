"""Full-ranking evaluation of a scorer over users (docs/design.md §2)."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.examples import pad_left, trim_left_padding
from ..data.split import Split
from .metrics import metrics_from_ranks
from .scores import ItemScores, MaterializedScores
from .streaming import SCORE_BYTES_PER_CHUNK, SeenItems, streamed_ranks

ScoreFn = Callable[[torch.Tensor, torch.Tensor], Union[torch.Tensor, ItemScores]]

# Users per batch when not given: as many as one 256 MiB chunk holds with the whole catalog
# (the batches of the materialized ranking before it streamed, so its ranks stay those), but
# at least this many, so a large catalog is streamed in chunks rather than in tiny batches.
MIN_BATCH_USERS = 256


def evaluate(
    score_fn: ScoreFn,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    num_items: int,
    max_len: int,
    ks: Sequence[int] = (5, 10, 20),
    **ranking,
) -> dict[str, float]:
    """HR/NDCG/MRR@K and ``num_users`` of the :func:`target_ranks` (same arguments, plus ``ks``)."""
    return ranking_metrics(target_ranks(score_fn, histories, targets, num_items, max_len, **ranking), ks)


def ranking_metrics(ranks: torch.Tensor, ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
    metrics = metrics_from_ranks(ranks, ks)
    metrics["num_users"] = len(ranks)
    return metrics


def target_ranks(
    score_fn: ScoreFn,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    num_items: int,
    max_len: int,
    batch_size: Optional[int] = None,
    exclude_history: bool = True,
    users: Optional[np.ndarray] = None,
    progress: bool = False,
    chunk_size: Optional[int] = None,
) -> torch.Tensor:
    """0-based rank of each user's target among all items, ``(num_users,)`` in the order given.

    ``score_fn(history, users)`` gets CPU tensors: ``history`` ``(b, max_len)`` left-padded
    with the last ``max_len`` items, ``users`` ``(b,)`` (``users`` argument, default
    ``0..len-1``). It returns the batch's :class:`~igrsr.eval.scores.ItemScores` (a model's
    ``item_scores``), or ``(b, num_items + 1)`` scores, on any device; ranks are computed
    there, streamed over chunks of ``chunk_size`` items (:func:`~igrsr.eval.streaming.streamed_ranks`;
    default: 256 MiB of scores per chunk). The rank is the number of other candidates scoring
    at least as high as the target (ties count against it). With ``exclude_history`` every
    item of the user's *full* history (not only the last ``max_len``) is removed from the
    candidates, except the target itself. ``batch_size`` defaults to the most users whose
    float32 scores of the whole catalog fit in 256 MiB, and at least 256.
    """
    targets = np.asarray(targets, dtype=np.int64)
    users = np.arange(len(histories)) if users is None else np.asarray(users, dtype=np.int64)
    if not len(histories) == len(targets) == len(users):
        raise ValueError(
            f"histories, targets and users differ in length: {len(histories)}, {len(targets)}, {len(users)}"
        )
    if len(targets) == 0:
        raise ValueError("no users to evaluate")
    if batch_size is None:
        batch_size = max(MIN_BATCH_USERS, SCORE_BYTES_PER_CHUNK // ((num_items + 1) * 4))
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # Users in order of history length, so each batch is trimmed to little padding; the
    # metrics are means over users, which the order does not change.
    by_length = np.argsort([min(len(h), max_len) for h in histories], kind="stable")
    ranks = torch.empty(len(targets), dtype=torch.long)
    with torch.no_grad():
        for start in tqdm(range(0, len(targets), batch_size), disable=not progress, desc="evaluate"):
            batch = by_length[start : start + batch_size]
            batch_histories = [histories[i] for i in batch]
            history = trim_left_padding({"history": pad_left(batch_histories, max_len)})["history"]
            scores = item_scores(score_fn(history, torch.from_numpy(users[batch])), len(batch), num_items)
            seen = SeenItems.from_histories(batch_histories, scores.device) if exclude_history else None
            batch_ranks = streamed_ranks(scores, torch.from_numpy(targets[batch]), seen, chunk_size)
            ranks[torch.from_numpy(batch)] = batch_ranks.cpu()
    return ranks


SPLIT_PARTS = ("valid", "test")


def model_ranks(
    model: torch.nn.Module,
    split: Split,
    part: str,
    *,
    device: str = "cpu",
    batch_size: Optional[int] = None,
    progress: bool = False,
    chunk_size: Optional[int] = None,
) -> torch.Tensor:
    """0-based full-ranking rank of every user's ``part`` target ("valid" or "test") under
    ``model``, in user order: the one way the trainer, ``igrsr evaluate`` and the study rank.

    ``model`` is a sequential recommender (``model.item_scores(history, users)``, streamed over
    chunks of ``chunk_size`` items; ``model.max_len``); it is put in eval mode for the ranking
    and back in its mode after.
    """
    if part not in SPLIT_PARTS:
        raise ValueError(f"part must be one of {SPLIT_PARTS}, got {part!r}")
    device = torch.device(device)

    def score(history: torch.Tensor, users: torch.Tensor) -> ItemScores:
        return model.item_scores(history.to(device), users.to(device))

    was_training = model.training
    model.eval()
    try:
        return target_ranks(
            score,
            getattr(split, f"{part}_history"),
            getattr(split, f"{part}_target"),
            split.num_items,
            model.max_len,
            batch_size=batch_size,
            users=np.arange(len(split.train)),
            progress=progress,
            chunk_size=chunk_size,
        )
    finally:
        model.train(was_training)


def item_scores(scores: Union[torch.Tensor, ItemScores], batch_size: int, num_items: int) -> ItemScores:
    """A score function's result as :class:`ItemScores`, checked against the batch and catalog."""
    if isinstance(scores, torch.Tensor):
        if tuple(scores.shape) != (batch_size, num_items + 1):
            raise ValueError(f"score_fn must return shape ({batch_size}, {num_items + 1}), got {tuple(scores.shape)}")
        return MaterializedScores(scores)
    if (scores.num_rows, scores.num_items) != (batch_size, num_items):
        raise ValueError(
            f"score_fn must score {batch_size} users over {num_items} items, "
            f"got {scores.num_rows} over {scores.num_items}"
        )
    return scores
