"""Triton backend of ``intent_cross_attention``: custom ops, fake impls, autograd, registration.

``torch.library`` custom ops with fake implementations (so ``torch.compile`` traces them
without graph breaks) and autograd, registered as the dispatcher's backend ``"triton"``.
Importing this module does not need Triton: the kernels (:mod:`.triton_kernels`) are
imported on the first call, and the dispatcher reports Triton unavailable without it.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..triton_support import check_triton_inputs, triton_supports, why_triton_unavailable
from . import dispatcher


@torch.library.custom_op("igrsr::intent_cross_attention_triton", mutates_args=())
def intent_cross_attention_triton(
    q: Tensor, k: Tensor, v: Tensor, intent_mask: Optional[Tensor], scale: float, dropout_p: float, seed: int
) -> Tensor:
    """Fused ``softmax(q kᵀ · scale) v`` over the visible intents (see ``intent_cross_attention``)."""
    from .triton_kernels import intent_cross_attention_forward

    return intent_cross_attention_forward(
        q.contiguous(), k.contiguous(), v.contiguous(), intent_mask, scale, dropout_p, seed
    )


@intent_cross_attention_triton.register_fake
def _(q, k, v, intent_mask, scale, dropout_p, seed):
    return q.new_empty(q.shape)


@torch.library.custom_op("igrsr::intent_cross_attention_triton_backward", mutates_args=())
def intent_cross_attention_triton_backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    intent_mask: Optional[Tensor],
    scale: float,
    dropout_p: float,
    seed: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv); dk and dv are reduced over L in a fixed order (deterministic); the dropout
    mask is redrawn from ``seed``."""
    from .triton_kernels import intent_cross_attention_backward

    return intent_cross_attention_backward(
        grad_out.contiguous(), q.contiguous(), k.contiguous(), v.contiguous(), intent_mask, scale, dropout_p, seed
    )


@intent_cross_attention_triton_backward.register_fake
def _(grad_out, q, k, v, intent_mask, scale, dropout_p, seed):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, intent_mask, scale, dropout_p, seed = inputs
    ctx.save_for_backward(q, k, v, intent_mask)
    ctx.arguments = (scale, dropout_p, seed)


def _backward(ctx, grad_out):
    q, k, v, intent_mask = ctx.saved_tensors
    grad_q, grad_k, grad_v = intent_cross_attention_triton_backward(grad_out, q, k, v, intent_mask, *ctx.arguments)
    return grad_q, grad_k, grad_v, None, None, None, None


intent_cross_attention_triton.register_autograd(_backward, setup_context=_setup_context)


def intent_cross_attention_triton_impl(q, k, v, intent_mask, scale, dropout_p, seed):
    """The dispatcher's entry: same arguments as the reference."""
    check_triton_inputs(q)
    # Contiguous here, not only inside the op, so autograd saves the contiguous copies and
    # the backward does not copy again.
    return intent_cross_attention_triton(
        q.contiguous(), k.contiguous(), v.contiguous(), intent_mask, scale, dropout_p, seed
    )


dispatcher.register(
    "triton",
    intent_cross_attention_triton_impl,
    why_unavailable=why_triton_unavailable,
    preference=10,
    auto_device_types=("cuda",),
    supports=triton_supports,
)
