"""Reference InfoNCE between two views, with group ids and a row mask."""

from typing import Optional

import torch
import torch.nn.functional as F


def _one_way(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Per-row -log softmax of the diagonal over the allowed columns."""
    masked = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    return torch.logsumexp(masked, dim=1) - logits.diagonal()


def reduce_row_losses(losses: torch.Tensor, row_mask: Optional[torch.Tensor], reduction: str) -> torch.Tensor:
    """Apply ``reduction`` to per-row losses; masked rows count as 0 and ``mean`` is over the
    rows that take part (0 when none does)."""
    if row_mask is not None:
        # where, not a product: a masked row's loss may be inf, and inf * 0 is NaN.
        losses = torch.where(row_mask, losses, torch.zeros_like(losses))
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    count = losses.shape[0] if row_mask is None else row_mask.sum().clamp(min=1)
    return total / count


def info_nce_reference(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    normalize: bool,
    symmetric: bool,
    group_ids: Optional[torch.Tensor],
    row_mask: Optional[torch.Tensor],
    reduction: str,
) -> torch.Tensor:
    """InfoNCE: row i of z1 and row i of z2 are positives, other rows are negatives.

    Rows sharing a group id are not negatives of each other; rows with row_mask False are
    neither anchors nor negatives.  Computed in float32 (float64 stays float64).
    """
    compute_dtype = torch.float64 if z1.dtype == torch.float64 else torch.float32
    a, b = z1.to(compute_dtype), z2.to(compute_dtype)
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    batch = a.shape[0]
    # allowed[i, j]: column j counts in row i's denominator.  It is the same matrix in
    # both directions because the group relation is symmetric and the mask is per row.
    allowed = torch.eye(batch, dtype=torch.bool, device=a.device)
    if group_ids is None:
        allowed = torch.ones_like(allowed)
    else:
        allowed = allowed | (group_ids[:, None] != group_ids[None, :])
    if row_mask is not None:
        allowed = allowed & row_mask[None, :]
    losses = _one_way(logits, allowed)
    if symmetric:
        losses = 0.5 * (losses + _one_way(logits.T, allowed))
    return reduce_row_losses(losses, row_mask, reduction).to(z1.dtype)
