"""Weights from other attention layouts into igrsr's layers.

:class:`~igrsr.nn.CausalSelfAttention` projects q, k and v with one fused ``qkv`` Linear
(output rows: all of q, then k, then v, each split into heads as ``(heads, head_dim)``) and
projects back with ``out``.  Two common layouts hold the same numbers:

- RecBole (``recbole.model.layers.MultiHeadAttention``): ``query``, ``key``, ``value`` and
  ``dense`` Linear layers;
- ``torch.nn.MultiheadAttention`` (self-attention, so one ``in_proj_weight``): ``in_proj_weight``
  (3d, d) and ``in_proj_bias``, already in q, k, v order, and ``out_proj``.

Both have the same head split, so the fused weight is the three weights stacked.
"""

from typing import Dict, Mapping

import torch

RECBOLE_SEPARATE = ("query", "key", "value")

# RecBole's TransformerLayer (post-norm) → CausalTransformerLayer(norm="post"); the attention
# projections are converted by fused_qkv_state_dict under "attention.".
RECBOLE_LAYER_NAMES = {
    "multi_head_attention.LayerNorm.": "attention_norm.",
    "multi_head_attention.": "attention.",
    "feed_forward.dense_1.": "ffn.net.0.",
    "feed_forward.dense_2.": "ffn.net.3.",
    "feed_forward.LayerNorm.": "ffn_norm.",
}


def _biases(state: Dict[str, torch.Tensor], keys, weight: torch.Tensor) -> torch.Tensor:
    """The biases at ``keys`` (removed from ``state``) stacked, for the projection ``weight``
    they make up together; a bias that is absent (a Linear without one) is zeros."""
    size = weight.shape[0] // len(keys)
    parts = [state.pop(key, None) for key in keys]
    return torch.cat([weight.new_zeros(size) if part is None else part for part in parts])


def fused_qkv_state_dict(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> Dict[str, torch.Tensor]:
    """``state_dict`` with the attention weights under ``prefix`` in the RecBole or
    ``nn.MultiheadAttention`` layout renamed and stacked into ``qkv.*`` and ``out.*``; other
    keys, and weights already fused, are unchanged.  A layout without biases gets zero ones.

    ``CausalSelfAttention.load_state_dict`` runs it, so
    ``layer.load_state_dict(nn.MultiheadAttention(d, h, batch_first=True).state_dict())``
    loads the same projections.  RecBole's attention module also holds the residual's
    LayerNorm: load its whole block with :func:`recbole_transformer_layer_state_dict`.
    """
    state = dict(state_dict)
    if prefix + "in_proj_weight" in state:
        weight = state.pop(prefix + "in_proj_weight")
        state[prefix + "qkv.weight"] = weight
        state[prefix + "qkv.bias"] = _biases(state, [prefix + "in_proj_bias"], weight)
        out_weight = state.pop(prefix + "out_proj.weight")
        state[prefix + "out.weight"] = out_weight
        state[prefix + "out.bias"] = _biases(state, [prefix + "out_proj.bias"], out_weight)
    elif prefix + "query.weight" in state:
        weight = torch.cat([state.pop(f"{prefix}{name}.weight") for name in RECBOLE_SEPARATE])
        state[prefix + "qkv.weight"] = weight
        state[prefix + "qkv.bias"] = _biases(state, [f"{prefix}{name}.bias" for name in RECBOLE_SEPARATE], weight)
        for suffix in ("weight", "bias"):
            if f"{prefix}dense.{suffix}" in state:
                state[f"{prefix}out.{suffix}"] = state.pop(f"{prefix}dense.{suffix}")
    return state


def recbole_transformer_layer_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A RecBole ``TransformerLayer``'s state dict as a ``CausalTransformerLayer(norm="post",
    ffn_dim=inner_size, activation=hidden_act, eps=layer_norm_eps)`` loads it."""
    renamed = {}
    for key, value in state_dict.items():
        old = next((name for name in RECBOLE_LAYER_NAMES if key.startswith(name)), None)
        if old is None:
            raise ValueError(f"state_dict key {key!r} is not part of a RecBole TransformerLayer")
        renamed[RECBOLE_LAYER_NAMES[old] + key[len(old) :]] = value
    return fused_qkv_state_dict(renamed, "attention.")
