"""Reference causal self-attention with padding and always-visible prefix keys."""

from typing import Optional

import torch

from ..attention_dropout import drop_probabilities


def causal_visibility(length: int, num_prefix: int, device) -> torch.Tensor:
    """(L, L) bool: query i sees key j when j <= i or j is one of the first num_prefix."""
    positions = torch.arange(length, device=device)
    causal = positions[None, :] <= positions[:, None]
    return causal | (positions[None, :] < num_prefix)


def causal_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor],
    num_prefix: int,
    scale: float,
    dropout_p: float,
    seed: int,
) -> torch.Tensor:
    """q/k/v (B,H,L,D); key_padding_mask bool (B,L) True = real token.

    Padded keys are never attended and padded query rows return zeros.  With ``dropout_p > 0``
    the probabilities are dropped with the mask of :mod:`igrsr.ops.attention_dropout`.
    """
    length = q.shape[-2]
    visible = causal_visibility(length, num_prefix, q.device)[None, None]  # (1,1,L,L)
    if key_padding_mask is not None:
        visible = visible & key_padding_mask[:, None, None, :]
    # Softmax in fp32 at least, in float64 for float64 inputs (the exact reference of the tests).
    softmax_dtype = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q, k.transpose(-1, -2)).to(softmax_dtype) * scale
    # A finite fill keeps rows with no visible key finite; they are padded rows, zeroed below.
    scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
    probs = drop_probabilities(torch.softmax(scores, dim=-1) * visible, dropout_p, seed)
    out = torch.matmul(probs.to(v.dtype), v)
    if key_padding_mask is not None:
        out = out * key_padding_mask[:, None, :, None].to(out.dtype)
    return out
