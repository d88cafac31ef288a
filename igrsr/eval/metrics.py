"""Ranks of the target items under full ranking, and the metrics computed from them."""

from __future__ import annotations

from typing import Optional, Sequence

import torch


def ranks_from_scores(
    scores: torch.Tensor, targets: torch.Tensor, exclude: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """0-based rank of each target among the candidate items; a ``(b,)`` LongTensor.

    ``scores`` is ``(b, N + 1)`` with column 0 the padding id, never a candidate. Candidates
    are items ``1..N`` minus those where ``exclude`` is True; the target is always a candidate,
    even if excluded (it may appear in the history). Ties count against the target: the rank
    is the number of other candidates scoring at least as high, so a constant scorer ranks
    last rather than first.
    """
    _check_rank_inputs(scores, targets, exclude)
    targets = targets.to(scores.device, torch.long)
    candidates = torch.ones_like(scores, dtype=torch.bool) if exclude is None else ~exclude.to(scores.device)
    candidates[:, 0] = False
    candidates.scatter_(1, targets[:, None], True)
    target_scores = scores.gather(1, targets[:, None])
    # The target itself is one of the candidates scoring >= its own score. Summing in int32
    # is faster than the default int64 on CPU and cannot overflow (at most N + 1 per row).
    at_least_as_high = ((scores >= target_scores) & candidates).sum(dim=1, dtype=torch.int32)
    return at_least_as_high.long() - 1


def _check_rank_inputs(scores: torch.Tensor, targets: torch.Tensor, exclude: Optional[torch.Tensor]) -> None:
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must have shape (batch, num_items + 1), got {tuple(scores.shape)}")
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"targets must have shape ({scores.shape[0]},), got {tuple(targets.shape)}")
    if exclude is not None and (exclude.shape != scores.shape or exclude.dtype != torch.bool):
        raise ValueError(
            f"exclude must be a bool tensor of shape {tuple(scores.shape)}, "
            f"got {exclude.dtype} of shape {tuple(exclude.shape)}"
        )
    if len(targets) and not (1 <= int(targets.min()) and int(targets.max()) < scores.shape[1]):
        raise ValueError(f"targets must be item ids in 1..{scores.shape[1] - 1}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")


def metrics_from_ranks(ranks, ks: Sequence[int] = (5, 10, 20)) -> dict[str, float]:
    """HR@K, NDCG@K and MRR@K for each K, averaged over users, from 0-based target ranks.

    With one target per user: HR@K = [rank < K], NDCG@K = 1 / log2(rank + 2) and
    MRR@K = 1 / (rank + 1) when rank < K, else 0.
    """
    ranks = torch.as_tensor(ranks).double().flatten()
    if ranks.numel() == 0:
        raise ValueError("no ranks to average")
    return {f"{name}@{k}": per_user_metric(ranks, name, k).mean().item() for k in ks for name in ("HR", "NDCG", "MRR")}


def parse_metric(metric: str) -> tuple[str, int]:
    """``"NDCG@10"`` as ``("NDCG", 10)``; HR, NDCG or MRR at a positive cut-off."""
    name, _, k = metric.partition("@")
    if name not in ("HR", "NDCG", "MRR") or not k.isdigit() or int(k) < 1:
        raise ValueError(f"metric must be HR, NDCG or MRR at a positive K, like NDCG@10; got {metric!r}")
    return name, int(k)


def per_user_metric(ranks, name: str, k: int) -> torch.Tensor:
    """Each user's HR@K, NDCG@K or MRR@K (``name``) from 0-based ranks, as float64."""
    ranks = torch.as_tensor(ranks).double().flatten()
    hit = ranks < k
    if name == "HR":
        return hit.double()
    if name == "NDCG":
        return torch.where(hit, 1.0 / torch.log2(ranks + 2), 0.0)
    if name == "MRR":
        return torch.where(hit, 1.0 / (ranks + 1), 0.0)
    raise ValueError(f"name must be HR, NDCG or MRR, got {name!r}")
