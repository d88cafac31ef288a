"""Attention layers over :mod:`igrsr.ops`; ``backend=`` picks the kernel."""

from typing import Optional

import torch
from torch import nn

from ..ops import causal_attention, check_op_backend, intent_cross_attention
from ..ops.intent_cross_attention import MAX_INTENTS  # noqa: F401  (re-exported: the most intents a layer takes)
from .convert import fused_qkv_state_dict
from .dropout import Dropout


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, L, H·D) → (B, H, L, D)."""
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, D) → (B, L, H·D)."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def check_heads(d_model: int, num_heads: int) -> None:
    if num_heads < 1 or d_model % num_heads:
        raise ValueError(f"d_model={d_model} must be a positive multiple of num_heads={num_heads}")


def resolve_valid_mask(
    valid_mask: Optional[torch.Tensor], key_padding_mask: Optional[torch.Tensor]
) -> Optional[torch.Tensor]:
    """The True = real token mask from either convention; both at once is an error."""
    if key_padding_mask is None:
        return valid_mask
    if valid_mask is not None:
        raise ValueError("give valid_mask (True = real token) or key_padding_mask (True = padding), not both")
    if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
        raise TypeError("key_padding_mask must be a bool tensor (True = padding, as in nn.MultiheadAttention)")
    return ~key_padding_mask


def fuse_separate_projections(module: nn.Module, state_dict, prefix: str, *unused) -> None:
    """Load-state-dict pre-hook: separate q/k/v weights become the fused ``qkv`` in place."""
    converted = fused_qkv_state_dict(state_dict, prefix)
    state_dict.clear()
    state_dict.update(converted)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with key padding and always-visible prefix keys.

    forward(x (B,L,d), valid_mask bool (B,L) True = real token, num_prefix) → (B,L,d).
    ``key_padding_mask=`` (keyword) takes torch's convention instead: True = padding, as in
    ``nn.MultiheadAttention``.  Padded keys are never attended to and padded query rows come
    out as zeros.  The q/k/v projections are one fused ``qkv`` Linear; ``load_state_dict``
    also takes RecBole's ``query/key/value/dense`` and ``nn.MultiheadAttention``'s
    ``in_proj_weight/out_proj`` layouts (see :func:`igrsr.nn.fused_qkv_state_dict`).
    """

    OP = "causal_attention"  # the op whose backend ``backend`` names

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, backend: str = "auto"):
        super().__init__()
        check_heads(d_model, num_heads)
        self.num_heads = num_heads
        self.backend = check_op_backend(self.OP, backend)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)
        self.register_load_state_dict_pre_hook(fuse_separate_projections)

    def forward(
        self,
        x: torch.Tensor,
        valid_mask: Optional[torch.Tensor] = None,
        num_prefix: int = 0,
        *,
        key_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        valid_mask = resolve_valid_mask(valid_mask, key_padding_mask)
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
        attended = causal_attention(q, k, v, valid_mask, num_prefix=num_prefix, backend=self.backend)
        output = self.dropout(self.out(merge_heads(attended)))
        if valid_mask is None:
            return output
        # The op gives zeros at padded rows; the output projection's bias would not.
        return output * valid_mask.unsqueeze(-1).to(output.dtype)


class IntentCrossAttention(nn.Module):
    """Multi-head cross-attention: item positions (queries) over intent vectors (keys/values).

    forward(x (B,L,d), intents (B,m,d_intent), intent_mask bool (B,m) True = visible) → (B,L,d).
    Intents carry no positions.  A row whose intents are all masked receives zeros.
    """

    OP = "intent_cross_attention"

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        d_intent: Optional[int] = None,
        backend: str = "auto",
    ):
        super().__init__()
        check_heads(d_model, num_heads)
        self.num_heads = num_heads
        self.backend = check_op_backend(self.OP, backend)
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_intent or d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def forward(
        self, x: torch.Tensor, intents: torch.Tensor, intent_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        q = split_heads(self.query(x), self.num_heads)
        k, v = (split_heads(t, self.num_heads) for t in self.key_value(intents).chunk(2, dim=-1))
        attended = intent_cross_attention(q, k, v, intent_mask, backend=self.backend)
        return self.dropout(self.out(merge_heads(attended)))
