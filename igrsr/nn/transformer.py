"""Transformer layers: the SASRec block (pre-norm by default, post-norm as RecBole's) and the IDR
layer built on it."""

from typing import Optional

import torch
from torch import nn

from .attention import CausalSelfAttention, IntentCrossAttention, resolve_valid_mask
from .dropout import Dropout

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
NORM_PLACEMENTS = ("pre", "post")


class FeedForward(nn.Module):
    """``Linear(d, hidden) → activation → dropout → Linear(hidden, d) → dropout``; ``hidden``
    defaults to ``4·d``.  ``gelu`` is the exact (erf) GELU, as in BERT and RecBole."""

    def __init__(self, d_model: int, dropout: float, hidden_dim: Optional[int] = None, activation: str = "gelu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        hidden_dim = 4 * d_model if hidden_dim is None else hidden_dim
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be at least 1, got {hidden_dim}")
        self.net = nn.Sequential(
            nn.Linear(d_model, hidden_dim),
            ACTIVATIONS[activation](),
            Dropout(dropout),
            nn.Linear(hidden_dim, d_model),
            Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CausalTransformerLayer(nn.Module):
    """A transformer block with causal self-attention.

    ``norm="pre"`` (default): ``X ← X + SelfAttn(LN(X)); X ← X + FFN(LN(X))``;
    ``norm="post"``: ``X ← LN(X + SelfAttn(X)); X ← LN(X + FFN(X))``, the block of BERT and of
    RecBole's SASRec (there ``ffn_dim=inner_size``, ``activation=hidden_act``,
    ``eps=layer_norm_eps``; :func:`igrsr.nn.recbole_transformer_layer_state_dict` converts its
    weights).  ``ffn_dim`` defaults to ``4·d_model``.  Padded rows (``valid_mask`` False) come
    out as zeros.

    The SASRec block, and the *decision* half of a :class:`DeliberativeReasonerLayer`
    (same parameters, so a reasoner can be warm-started from a trained SASRec).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        backend: str = "auto",
        *,
        norm: str = "pre",
        ffn_dim: Optional[int] = None,
        activation: str = "gelu",
        eps: float = 1e-5,
    ):
        super().__init__()
        if norm not in NORM_PLACEMENTS:
            raise ValueError(f"norm must be one of {NORM_PLACEMENTS}, got {norm!r}")
        self.pre_norm = norm == "pre"
        self.attention_norm = nn.LayerNorm(d_model, eps=eps)
        self.attention = CausalSelfAttention(d_model, num_heads, dropout, backend=backend)
        self.ffn_norm = nn.LayerNorm(d_model, eps=eps)
        self.ffn = FeedForward(d_model, dropout, ffn_dim, activation)

    def forward(
        self,
        x: torch.Tensor,
        valid_mask: Optional[torch.Tensor] = None,
        num_prefix: int = 0,
        *,
        key_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        valid_mask = resolve_valid_mask(valid_mask, key_padding_mask)
        if self.pre_norm:
            x = x + self.attention(self.attention_norm(x), valid_mask, num_prefix)
            x = x + self.ffn(self.ffn_norm(x))
        else:
            x = self.attention_norm(x + self.attention(x, valid_mask, num_prefix))
            x = self.ffn_norm(x + self.ffn(x))
        if valid_mask is not None:
            x = x * valid_mask.unsqueeze(-1).to(x.dtype)
        return x


class DeliberativeReasonerLayer(nn.Module):
    """One layer of the Intent-aware Deliberative Reasoner (IDR).

    1. intent deliberation: ``X ← X + CrossAttn(LN(X), intents)``;
    2. decision: ``X ← X + CausalSelfAttn(LN(X))`` over the real tokens;
    3. ``X ← X + FFN(LN(X))``.

    The cross-attention's output projection starts at zero, so a fresh layer computes
    exactly the causal block it wraps until training gives the intents a say.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        d_intent: Optional[int] = None,
        backend: str = "auto",
    ):
        super().__init__()
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attention = IntentCrossAttention(d_model, num_heads, dropout, d_intent, backend=backend)
        nn.init.zeros_(self.cross_attention.out.weight)
        nn.init.zeros_(self.cross_attention.out.bias)
        self.decision = CausalTransformerLayer(d_model, num_heads, dropout, backend=backend)

    def forward(
        self,
        x: torch.Tensor,
        intents: torch.Tensor,
        valid_mask: Optional[torch.Tensor] = None,
        intent_mask: Optional[torch.Tensor] = None,
        *,
        key_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``valid_mask`` True = real token (or ``key_padding_mask`` True = padding);
        ``intent_mask`` True = visible intent."""
        valid_mask = resolve_valid_mask(valid_mask, key_padding_mask)
        x = x + self.cross_attention(self.cross_norm(x), intents, intent_mask)
        return self.decision(x, valid_mask)
