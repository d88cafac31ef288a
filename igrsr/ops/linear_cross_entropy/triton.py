"""Backend ``triton``: the fused kernels of :mod:`.triton_kernels` as ``torch.library`` custom ops.

The same row bookkeeping as the chunked backend (:func:`.chunked.row_losses_and_lse`,
:func:`.chunked.gradients`: ignored rows dropped, target and smoothing terms), with the two
sweeps over the classes done by the kernels.  Importing this module does not need Triton: the
kernels are imported on the first call, and the dispatcher reports Triton unavailable without it.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..triton_support import DTYPES, why_triton_unavailable
from . import dispatcher
from .chunked import compute_dtype, gradients, row_losses_and_lse

# The kernels hold a row's whole hidden state in one tile.
MAX_DIM = 256


def _kernels():
    from . import triton_kernels

    return triton_kernels


@torch.library.custom_op("igrsr::linear_cross_entropy_triton", mutates_args=())
def linear_cross_entropy_triton(
    hidden: Tensor, weight: Tensor, targets: Tensor, ignore_index: int, label_smoothing: float
) -> Tuple[Tensor, Tensor]:
    """(per-row losses, per-row log-sum-exp), float32, 0 on ignored rows."""
    return row_losses_and_lse(hidden, weight, targets, ignore_index, label_smoothing, _kernels().row_logsumexp)


@linear_cross_entropy_triton.register_fake
def _(hidden, weight, targets, ignore_index, label_smoothing):
    row_losses = hidden.new_empty(hidden.shape[0], dtype=compute_dtype(hidden.dtype))
    return row_losses, torch.empty_like(row_losses)


@torch.library.custom_op("igrsr::linear_cross_entropy_triton_backward", mutates_args=())
def linear_cross_entropy_triton_backward(
    grad_row_losses: Tensor,
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    row_lse: Tensor,
    ignore_index: int,
    label_smoothing: float,
) -> Tuple[Tensor, Tensor]:
    """(grad_hidden, grad_weight), recomputing the logits tile by tile from ``row_lse``."""
    return gradients(
        grad_row_losses, hidden, weight, targets, row_lse, ignore_index, label_smoothing, _kernels().gradients
    )


@linear_cross_entropy_triton_backward.register_fake
def _(grad_row_losses, hidden, weight, targets, row_lse, ignore_index, label_smoothing):
    return torch.empty_like(hidden), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    hidden, weight, targets, ignore_index, label_smoothing = inputs
    _, row_lse = output
    ctx.mark_non_differentiable(row_lse)
    ctx.save_for_backward(hidden, weight, targets, row_lse)
    ctx.options = (ignore_index, label_smoothing)


def _backward(ctx, grad_row_losses, grad_row_lse):
    hidden, weight, targets, row_lse = ctx.saved_tensors
    grad_hidden, grad_weight = linear_cross_entropy_triton_backward(
        grad_row_losses.contiguous(), hidden, weight, targets, row_lse, *ctx.options
    )
    return grad_hidden, grad_weight, None, None, None


linear_cross_entropy_triton.register_autograd(_backward, setup_context=_setup_context)


def _why_inputs_unsupported(hidden: Tensor) -> Optional[str]:
    if hidden.dtype not in DTYPES:
        names = ", ".join(str(d).replace("torch.", "") for d in DTYPES)
        return f"backend 'triton' needs hidden and weight of dtype in ({names}), got {hidden.dtype}"
    if hidden.shape[1] > MAX_DIM:
        return f"backend 'triton' needs hidden's last dim <= {MAX_DIM} (one tile), got {hidden.shape[1]}"
    return None


def linear_cross_entropy_triton_impl(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    ignore_index: int,
    label_smoothing: float,
    chunk_size: Optional[int],
) -> Tensor:
    """The dispatcher's entry: same arguments as the reference (the kernels choose their own
    blocks, so ``chunk_size`` is not used); per-row losses."""
    reason = _why_inputs_unsupported(hidden)
    if reason is not None:
        raise (TypeError if hidden.dtype not in DTYPES else ValueError)(reason)
    row_losses, _ = linear_cross_entropy_triton(
        hidden.contiguous(), weight.contiguous(), targets.contiguous(), ignore_index, label_smoothing
    )
    return row_losses


dispatcher.register(
    "triton",
    linear_cross_entropy_triton_impl,
    why_unavailable=why_triton_unavailable,
    preference=10,
    auto_device_types=("cuda",),
    supports=lambda hidden, *other_inputs: _why_inputs_unsupported(hidden) is None,
)
