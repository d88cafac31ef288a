"""Reference linear cross-entropy: the rows × N logits materialized, then ``F.cross_entropy``."""

from typing import Optional

import torch
import torch.nn.functional as F


def linear_cross_entropy_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    label_smoothing: float,
    chunk_size: Optional[int],
) -> torch.Tensor:
    """Per-row losses (0 on ignored rows) of the logits ``hidden @ weight.T`` in the inputs' dtype,
    as models computed them before this op; returned in float32 (float64 stays float64) for the
    reduction.  ``chunk_size`` is not used: nothing is chunked here."""
    logits = hidden @ weight.T
    row_losses = F.cross_entropy(
        logits, targets, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    )
    return row_losses.to(torch.float64 if hidden.dtype == torch.float64 else torch.float32)
