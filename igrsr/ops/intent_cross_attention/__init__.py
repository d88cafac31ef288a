"""``intent_cross_attention``: items (queries) attend over a handful of intents.

The op's boundary: input validation, the dispatcher and the public function.  Its backends:
``reference`` (:mod:`.reference`) and ``triton`` (:mod:`.triton`, kernels in :mod:`.triton_kernels`).
"""

from typing import Optional

import torch

from ..attention_dropout import resolve_dropout
from ..dispatch import OpDispatcher
from ..validation import check_head_dim, check_mask, check_same, check_shape, check_tensor, resolve_scale
from .reference import intent_cross_attention_reference

MAX_INTENTS = 16

dispatcher = OpDispatcher("intent_cross_attention")
dispatcher.register("reference", intent_cross_attention_reference, preference=100)


def validate_cross_attention(q, k, v, intent_mask) -> None:
    check_tensor("q", q, 4)
    check_tensor("k", k, 4)
    check_tensor("v", v, 4)
    check_head_dim("q", q)
    batch, heads, _, head_dim = q.shape
    num_intents = k.shape[2]
    if not 1 <= num_intents <= MAX_INTENTS:
        raise ValueError(f"k must hold between 1 and {MAX_INTENTS} intents (dim 2), got {num_intents}")
    check_shape("k", k, (batch, heads, num_intents, head_dim))
    check_shape("v", v, (batch, heads, num_intents, head_dim))
    check_same("q", q, k=k, v=v)
    check_mask("intent_mask", intent_mask, (batch, num_intents), q.device)


def intent_cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    intent_mask: Optional[torch.Tensor] = None,
    *,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
    dropout_seed: Optional[int] = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Item→intent attention: ``softmax(q kᵀ · scale) v`` over the visible intents.

    Args:
        q: queries ``(B, H, L, D)`` (one per item position).
        k, v: intent keys and values ``(B, H, m, D)``, ``1 <= m <= 16``.
        intent_mask: optional bool ``(B, m)``, True = visible.  A row whose intents are
            all masked gets zeros (and zero gradients), never NaN.
        scale: score scale, default ``1/sqrt(D)``.
        dropout_p: attention dropout, ``0 <= p < 1``: each probability is zeroed with
            probability p after the softmax, the others scaled by ``1/(1-p)`` (always applied
            when > 0; layers pass 0 outside training).
        dropout_seed: seed of the dropout mask (``0 <= seed < 2**63``); the same seed gives
            the same mask on every backend.  None draws one from torch's default generator.
        backend: ``"auto"``, ``"reference"`` or ``"triton"`` (see :mod:`igrsr.ops.dispatch`).

    Returns:
        ``(B, H, L, D)`` in the dtype of ``q``.
    """
    validate_cross_attention(q, k, v, intent_mask)
    scale = resolve_scale(scale, q.shape[-1])
    dropout_p, seed = resolve_dropout(dropout_p, dropout_seed)
    inputs = (q, k, v, intent_mask, scale, dropout_p, seed)
    impl = dispatcher.select(backend, q.device, inputs).impl
    return impl(*inputs)


from . import triton as _triton_backend  # noqa: E402,F401  (registers backend "triton")
