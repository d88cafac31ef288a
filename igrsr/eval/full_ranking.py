"""Full-ranking evaluation of a scorer over users (docs/design.md §2)."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.examples import pad_left, trim_left_padding
from ..data.split import Split
from .metrics import metrics_from_ranks, ranks_from_scores

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Upper bound on one batch's float32 score matrix, so memory stays bounded for large catalogs.
SCORE_BYTES_PER_BATCH = 256 * 2**20


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
) -> torch.Tensor:
    """0-based rank of each user's target among all items, ``(num_users,)`` in the order given.

    ``score_fn(history, users)`` gets CPU tensors: ``history`` ``(b, max_len)`` left-padded
    with the last ``max_len`` items, ``users`` ``(b,)`` (``users`` argument, default
    ``0..len-1``). It returns ``(b, num_items + 1)`` scores on any device; ranks are computed
    there. With ``exclude_history`` every item of the user's *full* history (not only the last
    ``max_len``) is removed from the candidates, except the target itself. ``batch_size``
    defaults to the most users whose float32 scores fit in 256 MiB.
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
        batch_size = max(1, SCORE_BYTES_PER_BATCH // ((num_items + 1) * 4))
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
            scores = score_fn(history, torch.from_numpy(users[batch]))
            _check_scores(scores, len(batch), num_items)
            exclude = _history_mask(batch_histories, num_items, scores.device) if exclude_history else None
            ranks[torch.from_numpy(batch)] = ranks_from_scores(scores, torch.from_numpy(targets[batch]), exclude).cpu()
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
) -> torch.Tensor:
    """0-based full-ranking rank of every user's ``part`` target ("valid" or "test") under
    ``model``, in user order: the one way the trainer, ``igrsr evaluate`` and the study rank.

    ``model`` is a sequential recommender (``model.score(history, users)`` over the catalog,
    ``model.max_len``); it is put in eval mode for the ranking and back in its mode after.
    """
    if part not in SPLIT_PARTS:
        raise ValueError(f"part must be one of {SPLIT_PARTS}, got {part!r}")
    device = torch.device(device)

    def score(history: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return model.score(history.to(device), users.to(device))

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
        )
    finally:
        model.train(was_training)


def _check_scores(scores: torch.Tensor, batch_size: int, num_items: int) -> None:
    if tuple(scores.shape) != (batch_size, num_items + 1):
        raise ValueError(
            f"score_fn must return shape ({batch_size}, {num_items + 1}), got {tuple(scores.shape)}"
        )


def _history_mask(histories: Sequence[np.ndarray], num_items: int, device: torch.device) -> torch.Tensor:
    """``(b, num_items + 1)`` bool on ``device``, True at every item of each user's full history.

    Built where the scores are, so only the item ids travel, not a dense mask.
    """
    lengths = torch.tensor([len(history) for history in histories], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(len(histories)), lengths).to(device)
    items = torch.from_numpy(np.concatenate(histories).astype(np.int64, copy=False)).to(device)
    mask = torch.zeros(len(histories), num_items + 1, dtype=torch.bool, device=device)
    mask[rows, items] = True
    return mask
