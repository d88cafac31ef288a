"""Pieces shared by the Triton attention kernels (imports Triton: only kernel modules import this)."""

from typing import Optional

import torch
import triton
import triton.language as tl

from .triton_support import is_interpreting

LOG2_E = 1.4426950408889634  # scores are kept in base 2 so the kernels can use exp2


def needs_fp32_dot(dtype: torch.dtype) -> bool:
    """Whether ``dot`` must multiply in IEEE fp32 for inputs of ``dtype``.

    float32 inputs: the default TF32 products would be ~1e-3 off, far worse than the fp32
    PyTorch reference.  bfloat16 under the interpreter: its ``tl.dot`` multiplies the raw
    bf16 bit patterns as integers, so the operands are upcast first (exact for bf16, and
    the products are accumulated in fp32 exactly as the bf16 tensor-core path does).
    """
    return dtype == torch.float32 or (dtype == torch.bfloat16 and is_interpreting())


def mask_pointer(mask: Optional[torch.Tensor], placeholder: torch.Tensor) -> torch.Tensor:
    """A bool mask as bytes for a kernel, or ``placeholder`` (never read: the kernel's
    HAS_* flag is off) when there is none."""
    if mask is None:
        return placeholder
    return mask.contiguous().view(torch.uint8)


@triton.jit
def dot(a, b, acc, FP32_DOT: tl.constexpr):
    """``acc + a @ b`` accumulated in fp32; see ``needs_fp32_dot`` for ``FP32_DOT``."""
    if FP32_DOT:
        result = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        result = tl.dot(a, b, acc)
    return result


@triton.jit
def dropout_keep(seed, batch_head, rows, cols, num_rows, num_cols, dropout_p):
    """Which attention probabilities survive dropout: the mask of
    :func:`igrsr.ops.attention_dropout.dropout_keep_mask` at (batch·head, rows, cols) of a
    ``(B·H, num_rows, num_cols)`` tensor.  ``rows`` and ``cols`` broadcast: pass
    (rows[:, None], cols[None, :]) or the transpose.  Recomputed from the position, never stored."""
    offsets = (batch_head.to(tl.int64) * num_rows + rows) * num_cols + cols
    word0, word1, word2, word3 = tl.randint4x(seed, offsets >> 2)
    lane = offsets & 3
    word = tl.where(lane == 0, word0, tl.where(lane == 1, word1, tl.where(lane == 2, word2, word3)))
    return tl.uint_to_uniform_float(word) >= dropout_p


@triton.jit
def drop(x, keep, dropout_scale):
    """``x`` where kept, scaled by ``dropout_scale = 1/(1-p)``; 0 where dropped."""
    return tl.where(keep, x * dropout_scale, 0.0)
