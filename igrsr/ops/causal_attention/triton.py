"""Triton backend of ``causal_attention``: custom ops, fake impls, autograd, registration.

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


@torch.library.custom_op("igrsr::causal_attention_triton", mutates_args=())
def causal_attention_triton(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Optional[Tensor],
    num_prefix: int,
    scale: float,
    dropout_p: float,
    seed: int,
) -> Tuple[Tensor, Tensor]:
    """(out, lse): the attention output (see ``causal_attention``) and the per-row
    log-sum-exp in base 2, fp32 ``(B, H, L)``, kept for the backward (not differentiable)."""
    from .triton_kernels import causal_attention_forward

    return causal_attention_forward(
        q.contiguous(), k.contiguous(), v.contiguous(), key_padding_mask, num_prefix, scale, dropout_p, seed
    )


@causal_attention_triton.register_fake
def _(q, k, v, key_padding_mask, num_prefix, scale, dropout_p, seed):
    return q.new_empty(q.shape), q.new_empty(q.shape[:-1], dtype=torch.float32)


@torch.library.custom_op("igrsr::causal_attention_triton_backward", mutates_args=())
def causal_attention_triton_backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    key_padding_mask: Optional[Tensor],
    num_prefix: int,
    scale: float,
    dropout_p: float,
    seed: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv), recomputing the attention probabilities from ``lse`` and their dropout
    mask from ``seed``."""
    from .triton_kernels import causal_attention_backward

    return causal_attention_backward(
        grad_out.contiguous(),
        q.contiguous(),
        k.contiguous(),
        v.contiguous(),
        out.contiguous(),
        lse,
        key_padding_mask,
        num_prefix,
        scale,
        dropout_p,
        seed,
    )


@causal_attention_triton_backward.register_fake
def _(grad_out, q, k, v, out, lse, key_padding_mask, num_prefix, scale, dropout_p, seed):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, key_padding_mask, num_prefix, scale, dropout_p, seed = inputs
    out, lse = output
    ctx.mark_non_differentiable(lse)
    ctx.save_for_backward(q, k, v, out, lse, key_padding_mask)
    ctx.arguments = (num_prefix, scale, dropout_p, seed)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, key_padding_mask = ctx.saved_tensors
    grad_q, grad_k, grad_v = causal_attention_triton_backward(
        grad_out, q, k, v, out, lse, key_padding_mask, *ctx.arguments
    )
    return grad_q, grad_k, grad_v, None, None, None, None, None


causal_attention_triton.register_autograd(_backward, setup_context=_setup_context)


def causal_attention_triton_impl(q, k, v, key_padding_mask, num_prefix, scale, dropout_p, seed):
    """The dispatcher's entry: same arguments as the reference."""
    check_triton_inputs(q)
    # Contiguous here, not only inside the op, so autograd saves the contiguous copies and
    # the backward does not copy again.
    out, _ = causal_attention_triton(
        q.contiguous(), k.contiguous(), v.contiguous(), key_padding_mask, num_prefix, scale, dropout_p, seed
    )
    return out


dispatcher.register(
    "triton",
    causal_attention_triton_impl,
    why_unavailable=why_triton_unavailable,
    preference=10,
    auto_device_types=("cuda",),
    supports=triton_supports,
)
