"""Triton kernels of ``linear_cross_entropy``: logits tiles in on-chip memory, never in HBM.

Like Apple's Cut Cross-Entropy, each program computes tiles of ``hidden @ weight.T`` from
blocks of both inputs and reduces them on the spot:

- ``_lse_kernel``: grid (row blocks, class splits); the online max and sum of exponentials of
  its rows over its range of class blocks, combined across splits afterwards;
- ``_grad_hidden_kernel``: same grid; recomputes the tiles, turns them into logit gradients
  and accumulates ``grad_logits @ weight`` for its rows, one partial per split;
- ``_grad_weight_kernel``: one program per class block, over every row block:
  ``grad_logits.T @ hidden`` for its classes, written once (no atomics, deterministic).

Rows arrive compacted (no ignored rows); ``ROW_GRADS`` is each row's incoming gradient.
Products accumulate in float32 (IEEE for float32 inputs, see ``needs_fp32_dot``).
"""

from typing import NamedTuple, Tuple

import torch
import triton
import triton.language as tl

from ..triton_common import dot, needs_fp32_dot
from ..triton_support import is_interpreting


class LaunchConfig(NamedTuple):
    block_rows: int
    block_classes: int
    num_warps: int


def launch_config(dtype: torch.dtype) -> LaunchConfig:
    """Tile sizes and warps: small tiles under the interpreter, so that the tests' small shapes
    span several blocks; on a GPU, tiles that compile for sm_90 without register spills at
    d <= 64 (scripts/compile_triton_kernels.py prints them; at d = 128 some spill, up to 4.8 KB
    per thread for float32 on sm_80).  float32's IEEE products
    take more registers than the 16-bit tensor-core ones, hence its smaller tiles.  Not yet
    tuned on a GPU."""
    if is_interpreting():
        return LaunchConfig(16, 32, 4)
    if dtype == torch.float32:
        return LaunchConfig(32, 64, 8)
    return LaunchConfig(64, 128, 8)


def _programs_wanted(device: torch.device) -> int:
    """Enough programs to fill the device a few times over."""
    if device.type != "cuda":
        return 4
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


@triton.jit
def _hidden_tile(H, row_block, rows, dim, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    offsets = row_block * BLOCK_R + tl.arange(0, BLOCK_R)
    dims = tl.arange(0, BLOCK_D)
    mask = (offsets < rows)[:, None] & (dims < dim)[None, :]
    return tl.load(H + offsets[:, None] * dim + dims[None, :], mask=mask, other=0.0), offsets


@triton.jit
def _weight_tile(W, class_block, classes, dim, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """The block's weight rows transposed, (BLOCK_D, BLOCK_N), and their class indices."""
    offsets = class_block * BLOCK_N + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    mask = (dims < dim)[:, None] & (offsets < classes)[None, :]
    return tl.load(W + offsets[None, :] * dim + dims[:, None], mask=mask, other=0.0), offsets


@triton.jit
def _grad_logits(logits, lse, row_grads, targets, class_offsets, classes, smoothing_scale, target_scale):
    """g (exp(z - lse) - ε/N) - g (1 - ε) [class = target], 0 on the padding classes."""
    probs = tl.exp(logits - lse[:, None])
    grads = row_grads[:, None] * (probs - smoothing_scale)
    is_target = class_offsets[None, :] == targets[:, None]
    grads = tl.where(is_target, grads - target_scale * row_grads[:, None], grads)
    return tl.where((class_offsets < classes)[None, :], grads, 0.0)


@triton.jit
def _lse_kernel(
    H,
    W,
    PARTIAL_MAX,
    PARTIAL_SUM,
    rows,
    classes,
    dim,
    blocks_per_split,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    FP32_DOT: tl.constexpr,
):
    row_block = tl.program_id(0)
    split = tl.program_id(1)
    hidden, row_offsets = _hidden_tile(H, row_block, rows, dim, BLOCK_R, BLOCK_D)
    running_max = tl.full([BLOCK_R], float("-inf"), tl.float32)
    running_sum = tl.zeros([BLOCK_R], tl.float32)
    first = split * blocks_per_split
    last = tl.minimum(first + blocks_per_split, tl.cdiv(classes, BLOCK_N))
    for class_block in range(first, last):
        weight, class_offsets = _weight_tile(W, class_block, classes, dim, BLOCK_N, BLOCK_D)
        logits = dot(hidden, weight, tl.zeros([BLOCK_R, BLOCK_N], tl.float32), FP32_DOT)
        logits = tl.where((class_offsets < classes)[None, :], logits, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(logits, axis=1))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(logits - new_max[:, None]), axis=1)
        running_max = new_max
    out = split * rows + row_offsets
    tl.store(PARTIAL_MAX + out, running_max, mask=row_offsets < rows)
    tl.store(PARTIAL_SUM + out, running_sum, mask=row_offsets < rows)


@triton.jit
def _grad_hidden_kernel(
    H,
    W,
    LSE,
    ROW_GRADS,
    TARGETS,
    GRAD_H_PARTIAL,
    rows,
    classes,
    dim,
    blocks_per_split,
    smoothing_scale,
    target_scale,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    FP32_DOT: tl.constexpr,
):
    row_block = tl.program_id(0)
    split = tl.program_id(1)
    hidden, row_offsets = _hidden_tile(H, row_block, rows, dim, BLOCK_R, BLOCK_D)
    in_rows = row_offsets < rows
    lse = tl.load(LSE + row_offsets, mask=in_rows, other=0.0)
    row_grads = tl.load(ROW_GRADS + row_offsets, mask=in_rows, other=0.0)
    targets = tl.load(TARGETS + row_offsets, mask=in_rows, other=-1)
    grad_hidden = tl.zeros([BLOCK_R, BLOCK_D], tl.float32)
    first = split * blocks_per_split
    last = tl.minimum(first + blocks_per_split, tl.cdiv(classes, BLOCK_N))
    for class_block in range(first, last):
        weight, class_offsets = _weight_tile(W, class_block, classes, dim, BLOCK_N, BLOCK_D)
        logits = dot(hidden, weight, tl.zeros([BLOCK_R, BLOCK_N], tl.float32), FP32_DOT)
        grads = _grad_logits(logits, lse, row_grads, targets, class_offsets, classes, smoothing_scale, target_scale)
        grad_hidden = dot(grads.to(weight.dtype), tl.trans(weight), grad_hidden, FP32_DOT)
    dims = tl.arange(0, BLOCK_D)
    out = GRAD_H_PARTIAL + (split * rows + row_offsets[:, None]) * dim + dims[None, :]
    tl.store(out, grad_hidden, mask=in_rows[:, None] & (dims < dim)[None, :])


@triton.jit
def _grad_weight_kernel(
    H,
    W,
    LSE,
    ROW_GRADS,
    TARGETS,
    GRAD_W,
    rows,
    classes,
    dim,
    smoothing_scale,
    target_scale,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    FP32_DOT: tl.constexpr,
):
    class_block = tl.program_id(0)
    weight, class_offsets = _weight_tile(W, class_block, classes, dim, BLOCK_N, BLOCK_D)
    grad_weight = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for row_block in range(0, tl.cdiv(rows, BLOCK_R)):
        hidden, row_offsets = _hidden_tile(H, row_block, rows, dim, BLOCK_R, BLOCK_D)
        in_rows = row_offsets < rows
        lse = tl.load(LSE + row_offsets, mask=in_rows, other=0.0)
        row_grads = tl.load(ROW_GRADS + row_offsets, mask=in_rows, other=0.0)
        targets = tl.load(TARGETS + row_offsets, mask=in_rows, other=-1)
        logits = dot(hidden, weight, tl.zeros([BLOCK_R, BLOCK_N], tl.float32), FP32_DOT)
        grads = _grad_logits(logits, lse, row_grads, targets, class_offsets, classes, smoothing_scale, target_scale)
        grad_weight = dot(tl.trans(grads.to(hidden.dtype)), hidden, grad_weight, FP32_DOT)
    dims = tl.arange(0, BLOCK_D)
    out = GRAD_W + class_offsets[:, None] * dim + dims[None, :]
    tl.store(
        out, grad_weight.to(GRAD_W.dtype.element_ty), mask=(class_offsets < classes)[:, None] & (dims < dim)[None, :]
    )


def _splits(rows: int, classes: int, hidden: torch.Tensor) -> Tuple[int, int, int]:
    """(row blocks, class splits, class blocks per split): splits of the class axis so that
    row blocks × splits fills the device, none of them empty."""
    block_rows, block_classes, _ = launch_config(hidden.dtype)
    row_blocks = triton.cdiv(rows, block_rows)
    class_blocks = triton.cdiv(classes, block_classes)
    wanted = max(1, min(class_blocks, triton.cdiv(_programs_wanted(hidden.device), row_blocks)))
    per_split = triton.cdiv(class_blocks, wanted)
    return row_blocks, triton.cdiv(class_blocks, per_split), per_split


def constexprs(hidden: torch.Tensor) -> dict:
    config = launch_config(hidden.dtype)
    return dict(
        BLOCK_R=config.block_rows,
        BLOCK_N=config.block_classes,
        BLOCK_D=max(16, triton.next_power_of_2(hidden.shape[1])),
        FP32_DOT=needs_fp32_dot(hidden.dtype),
    )


def row_logsumexp(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """float32 ``logsumexp(hidden @ weight.T, dim=1)`` for contiguous (R, d) and (N, d)."""
    rows, classes = hidden.shape[0], weight.shape[0]
    row_blocks, splits, per_split = _splits(rows, classes, hidden)
    partial_max = hidden.new_empty((splits, rows), dtype=torch.float32)
    partial_sum = torch.empty_like(partial_max)
    _lse_kernel[(row_blocks, splits)](
        hidden,
        weight,
        partial_max,
        partial_sum,
        rows,
        classes,
        hidden.shape[1],
        per_split,
        **constexprs(hidden),
        num_warps=launch_config(hidden.dtype).num_warps,
    )
    overall_max = partial_max.amax(dim=0)
    return overall_max + (partial_sum * torch.exp(partial_max - overall_max)).sum(dim=0).log()


def gradients(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    row_grads: torch.Tensor,
    lse: torch.Tensor,
    label_smoothing: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(float32 grad hidden, grad weight in weight's dtype) of the rows' losses weighted by
    ``row_grads``, from the rows' ``lse``."""
    rows, classes, dim = hidden.shape[0], weight.shape[0], hidden.shape[1]
    row_blocks, splits, per_split = _splits(rows, classes, hidden)
    scales = (label_smoothing / classes, 1.0 - label_smoothing)
    row_inputs = (lse.float().contiguous(), row_grads.float().contiguous(), targets.contiguous())
    grad_hidden_partial = hidden.new_empty((splits, rows, dim), dtype=torch.float32)
    _grad_hidden_kernel[(row_blocks, splits)](
        hidden,
        weight,
        *row_inputs,
        grad_hidden_partial,
        rows,
        classes,
        dim,
        per_split,
        *scales,
        **constexprs(hidden),
        num_warps=launch_config(hidden.dtype).num_warps,
    )
    grad_weight = torch.empty_like(weight)
    config = launch_config(hidden.dtype)
    _grad_weight_kernel[(triton.cdiv(classes, config.block_classes),)](
        hidden,
        weight,
        *row_inputs,
        grad_weight,
        rows,
        classes,
        dim,
        *scales,
        **constexprs(hidden),
        num_warps=config.num_warps,
    )
    return grad_hidden_partial.sum(dim=0), grad_weight
