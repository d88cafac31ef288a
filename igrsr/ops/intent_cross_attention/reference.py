"""Reference item→intent cross-attention."""

from typing import Optional

import torch

from ..attention_dropout import drop_probabilities


def intent_cross_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    intent_mask: Optional[torch.Tensor],
    scale: float,
    dropout_p: float,
    seed: int,
) -> torch.Tensor:
    """softmax(q kᵀ · scale) v over the visible intents; rows with none visible are zero.

    q (B,H,L,D), k/v (B,H,m,D), intent_mask bool (B,m) True = visible.  With ``dropout_p > 0``
    the probabilities are dropped with the mask of :mod:`igrsr.ops.attention_dropout`.
    """
    # Softmax in fp32 at least, in float64 for float64 inputs (the exact reference of the tests).
    softmax_dtype = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q, k.transpose(-1, -2)).to(softmax_dtype) * scale  # (B,H,L,m)
    if intent_mask is None:
        probs = torch.softmax(scores, dim=-1)
    else:
        visible = intent_mask[:, None, None, :]
        # A finite fill keeps fully masked rows finite; they are zeroed just below.
        scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1) * visible
    probs = drop_probabilities(probs, dropout_p, seed)
    return torch.matmul(probs.to(v.dtype), v)
