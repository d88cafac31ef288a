"""``info_nce`` on the compiled kernels.

The C++ extension (sources in ``csrc/info_nce/``) defines ``igrsr::info_nce_forward``
(per-row losses and the row / column log-sum-exps, never a B×B matrix) and
``igrsr::info_nce_backward`` (gradients recomputed tile by tile from those statistics), with
CPU and CUDA implementations.  This module adds
what torch needs from Python — fake implementations for ``torch.compile`` and the autograd
formula — and registers the dispatcher backends ``"cuda"`` and ``"cpu"``.
"""

from typing import Optional, Union

import torch

from .. import extension
from ..validation import check_same_device
from . import dispatcher
from .reference import reduce_row_losses

# csrc/info_nce/core_math.h kMaxDim: the widest rows the kernels keep in registers / shared memory.
KERNEL_MAX_DIM = 512


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# The fake implementations also run for real on meta tensors, when any input is one: the
# others' devices are checked so that a meta tensor among CPU ones is an error, not outputs of
# uninitialised memory on z1's device.
def _forward_fake(z1, z2, temperature, normalize, symmetric, group_ids, row_mask):
    check_same_device("z1", z1, z2=z2, group_ids=group_ids, row_mask=row_mask)
    batch = z1.shape[0]
    dtype = _compute_dtype(z1.dtype)
    loss_rows = z1.new_empty((batch,), dtype=dtype)
    return loss_rows, torch.empty_like(loss_rows), z1.new_empty((batch if symmetric else 0,), dtype=dtype)


def _backward_fake(grad_loss_rows, z1, z2, lse_rows, lse_cols, temperature, normalize, symmetric, group_ids, row_mask):
    check_same_device(
        "z1", z1, grad_loss_rows=grad_loss_rows, z2=z2, lse_rows=lse_rows, lse_cols=lse_cols, group_ids=group_ids,
        row_mask=row_mask,
    )  # fmt: skip
    # The kernels return contiguous gradients whatever the inputs' strides.
    return z1.new_empty(z1.shape), z2.new_empty(z2.shape)


def _setup_context(ctx, inputs, output):
    z1, z2, temperature, normalize, symmetric, group_ids, row_mask = inputs
    _, lse_rows, lse_cols = output
    ctx.save_for_backward(z1, z2, lse_rows, lse_cols, group_ids, row_mask)
    ctx.options = (temperature, normalize, symmetric)
    ctx.mark_non_differentiable(lse_rows, lse_cols)


def _backward(ctx, grad_loss_rows, grad_lse_rows, grad_lse_cols):
    z1, z2, lse_rows, lse_cols, group_ids, row_mask = ctx.saved_tensors
    temperature, normalize, symmetric = ctx.options
    grad_z1, grad_z2 = torch.ops.igrsr.info_nce_backward(
        grad_loss_rows, z1, z2, lse_rows, lse_cols, temperature, normalize, symmetric, group_ids, row_mask
    )
    return grad_z1, grad_z2, None, None, None, None, None


def _register_python_parts() -> None:
    torch.library.register_fake("igrsr::info_nce_forward", _forward_fake)
    torch.library.register_fake("igrsr::info_nce_backward", _backward_fake)
    torch.library.register_autograd("igrsr::info_nce_forward", _backward, setup_context=_setup_context)


def why_kernels_cannot_take(z1: torch.Tensor, temperature: Union[float, torch.Tensor]) -> Optional[str]:
    """None when the kernels take these inputs, else what they lack (``auto`` then moves on)."""
    if z1.shape[1] > KERNEL_MAX_DIM:
        return f"the kernels cover d up to {KERNEL_MAX_DIM}, and z1 has {z1.shape[1]} features"
    if isinstance(temperature, torch.Tensor) and temperature.requires_grad:
        return "the kernels give no gradient to a temperature tensor that requires grad"
    return None


def kernels_support(*inputs) -> bool:
    """For ``auto``: whether the kernels take the implementation arguments ``inputs`` (z1, z2,
    temperature, ...); asked with none, whether they run on the device at all."""
    # len(), not `not inputs`: torch.compile traces no `not` of a tuple (a graph break).
    return len(inputs) == 0 or why_kernels_cannot_take(inputs[0], inputs[2]) is None


def info_nce_compiled(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: Union[float, torch.Tensor],
    normalize: bool,
    symmetric: bool,
    group_ids: Optional[torch.Tensor],
    row_mask: Optional[torch.Tensor],
    reduction: str,
) -> torch.Tensor:
    """Same contract as :func:`igrsr.ops.info_nce.reference.info_nce_reference`; torch routes the op to
    the CPU or CUDA kernel by the inputs' device."""
    reason = why_kernels_cannot_take(z1, temperature)
    if reason is not None:
        raise ValueError(
            f"info_nce: backend {z1.device.type!r} cannot run these inputs: {reason}; "
            "backend 'reference' (or 'auto') can"
        )
    temperature = float(temperature)
    loss_rows, _, _ = torch.ops.igrsr.info_nce_forward(z1, z2, temperature, normalize, symmetric, group_ids, row_mask)
    return reduce_row_losses(loss_rows, row_mask, reduction).to(z1.dtype)


# The device is checked first: tensors of another device never make the extension compile
# (extension.load_error compiles it at its first call where it was not built at install).
def cpu_unavailable(device: torch.device) -> Optional[str]:
    if device.type != "cpu":
        return f"the C++ CPU kernel takes CPU tensors, not {device.type} ones"
    return extension.load_error()


def cuda_unavailable(device: torch.device) -> Optional[str]:
    if device.type != "cuda":
        return f"the CUDA kernel takes CUDA tensors, not {device.type} ones"
    reason = extension.load_error()
    if reason is None and not extension.built_with_cuda():
        return "igrsr._C was built without CUDA (at build time torch had no CUDA or nvcc was not found)"
    return reason


extension.when_loaded(_register_python_parts)
dispatcher.register("cuda", info_nce_compiled, cuda_unavailable, preference=10, supports=kernels_support)
dispatcher.register("cpu", info_nce_compiled, cpu_unavailable, preference=20, supports=kernels_support)
