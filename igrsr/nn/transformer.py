"""Pre-norm transformer layers: the SASRec block and the IDR layer built on it."""

from typing import Optional

import torch
from torch import nn

from .attention import CausalSelfAttention, IntentCrossAttention
from .dropout import Dropout


class FeedForward(nn.Module):
    def __init__(self, d_model: int, dropout: float, expansion: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, expansion * d_model),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(expansion * d_model, d_model),
            Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CausalTransformerLayer(nn.Module):
    """``X ← X + SelfAttn(LN(X)); X ← X + FFN(LN(X))`` with causal attention.

    The SASRec block, and the *decision* half of a :class:`DeliberativeReasonerLayer`
    (same parameters, so a reasoner can be warm-started from a trained SASRec).
    ``attn_dropout``: attention-probability dropout of its :class:`CausalSelfAttention`.
    """

    def __init__(
        self, d_model: int, num_heads: int, dropout: float = 0.0, backend: str = "auto", attn_dropout: float = 0.0
    ):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, num_heads, dropout, backend=backend, attn_dropout=attn_dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, dropout)

    def forward(
        self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None, num_prefix: int = 0
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), key_padding_mask, num_prefix)
        x = x + self.ffn(self.ffn_norm(x))
        if key_padding_mask is not None:
            x = x * key_padding_mask.unsqueeze(-1).to(x.dtype)
        return x


class DeliberativeReasonerLayer(nn.Module):
    """One layer of the Intent-aware Deliberative Reasoner (IDR).

    1. intent deliberation: ``X ← X + CrossAttn(LN(X), intents)``;
    2. decision: ``X ← X + CausalSelfAttn(LN(X))`` with the padding mask;
    3. ``X ← X + FFN(LN(X))``.

    The cross-attention's output projection starts at zero, so a fresh layer computes
    exactly the causal block it wraps until training gives the intents a say.
    ``attn_dropout``: attention-probability dropout of both attentions.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        d_intent: Optional[int] = None,
        backend: str = "auto",
        attn_dropout: float = 0.0,
    ):
        super().__init__()
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attention = IntentCrossAttention(
            d_model, num_heads, dropout, d_intent, backend=backend, attn_dropout=attn_dropout
        )
        nn.init.zeros_(self.cross_attention.out.weight)
        nn.init.zeros_(self.cross_attention.out.bias)
        self.decision = CausalTransformerLayer(d_model, num_heads, dropout, backend=backend, attn_dropout=attn_dropout)

    def forward(
        self,
        x: torch.Tensor,
        intents: torch.Tensor,
        key_padding_mask: Optional[torch.Tensor] = None,
        intent_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        x = x + self.cross_attention(self.cross_norm(x), intents, intent_mask)
        return self.decision(x, key_padding_mask)
