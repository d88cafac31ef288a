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
def dropout_keep(seed, batch_head, rows, col_start, num_rows, num_cols, dropout_p, BLOCK_COLS: tl.constexpr):
    """(len(rows), BLOCK_COLS) bool: which attention probabilities of rows ``rows`` and columns
    ``col_start + arange(BLOCK_COLS)`` (``col_start`` a multiple of 4) of a ``(B·H, num_rows,
    num_cols)`` tensor survive dropout: the mask of :func:`igrsr.ops.attention_dropout
    .dropout_keep_mask`, recomputed from the position, never stored.  One Philox call serves
    four neighbouring columns."""
    calls_per_row = tl.cdiv(num_cols, 4)
    calls = col_start // 4 + tl.arange(0, BLOCK_COLS // 4)
    counters = (batch_head.to(tl.int64) * num_rows + rows[:, None]) * calls_per_row + calls[None, :]
    word0, word1, word2, word3 = tl.randint4x(seed, counters)
    # join(join(w0, w2), join(w1, w3)) is (..., call, 2, 2) with word w at [call, w // 2, w % 2].
    words = tl.join(tl.join(word0, word2), tl.join(word1, word3))
    words = tl.reshape(words, (rows.shape[0], BLOCK_COLS))
    return tl.uint_to_uniform_float(words) >= dropout_p


@triton.jit
def drop(x, keep, dropout_scale):
    """``x`` where kept, scaled by ``dropout_scale = 1/(1-p)``; 0 where dropped."""
    return tl.where(keep, x * dropout_scale, 0.0)
