"""Fused item→intent cross-attention: ``softmax(q kᵀ · scale) v`` over at most 16 intents.

Every query row needs all ``m <= 16`` intents, so a program holds them all in registers,
padded to ``INTENT_BLOCK`` rows (``tl.dot`` needs every dimension >= 16) with masked loads,
and computes scores, mask, softmax and the weighted sum for a block of query rows in one
pass.  Nothing of size L×m reaches memory, not even a log-sum-exp: the backward recomputes
the (tiny) softmax from q and k.

The backward writes dq block by block and reduces dk, dv over L deterministically: each
program sums its chunk of L in registers and stores one fp32 partial; the partials are
summed in a fixed order afterwards.  No atomics, so gradients are bitwise reproducible.

Attention dropout (``HAS_DROPOUT``) drops the normalized probabilities with a keep-mask drawn
from each (batch·head, query, intent) position (``dropout_keep``), which the backward redraws:
dv takes the dropped probabilities, and the gradient of the probabilities is dropped the same
way before the softmax backward.

Inputs are contiguous ``(B, H, L, D)`` / ``(B, H, m, D)`` tensors.
"""

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ..triton_common import LOG2_E, dot, drop, dropout_keep, mask_pointer, needs_fp32_dot
from ..triton_support import is_interpreting

INTENT_BLOCK = tl.constexpr(16)  # jitted code may read a global only when it is a constexpr
# Programs per streaming multiprocessor the dk/dv reduction aims for: enough to hide latency
# at small B·H, few enough that summing the partials stays negligible.
PROGRAMS_PER_PROCESSOR = 4


@triton.jit
def _load_intents(K, V, INTENT_MASK, batch_head, num_heads, num_intents,
                  HAS_MASK: tl.constexpr, HEAD_DIM: tl.constexpr):
    """k, v ``(INTENT_BLOCK, HEAD_DIM)`` of one (batch, head), zero rows past ``num_intents``,
    and which of the padded intent slots are visible."""
    intents = tl.arange(0, INTENT_BLOCK)
    dims = tl.arange(0, HEAD_DIM)
    present = intents < num_intents
    offsets = (batch_head.to(tl.int64) * num_intents + intents[:, None]) * HEAD_DIM + dims[None, :]
    k = tl.load(K + offsets, mask=present[:, None], other=0.0)
    v = tl.load(V + offsets, mask=present[:, None], other=0.0)
    visible = present
    if HAS_MASK:
        batch = batch_head // num_heads
        flags = tl.load(INTENT_MASK + batch * num_intents + intents, mask=present, other=0)
        visible = visible & (flags != 0)
    return k, v, visible


@triton.jit
def _intent_probabilities(q, k, visible, qk_scale, FP32_DOT: tl.constexpr):
    """fp32 softmax over the visible intents, ``(BLOCK_L, INTENT_BLOCK)``; rows with no
    visible intent are all zero instead of NaN."""
    scores = dot(q, tl.trans(k), None, FP32_DOT) * qk_scale
    scores = tl.where(visible[None, :], scores, float("-inf"))
    row_max = tl.max(scores, 1)
    # A row with every intent masked has max -inf; shifting by 0 keeps exp2(-inf) = 0.
    row_max = tl.where(row_max == float("-inf"), 0.0, row_max)
    unnormalized = tl.math.exp2(scores - row_max[:, None])
    total = tl.sum(unnormalized, 1)
    return unnormalized / tl.where(total == 0.0, 1.0, total)[:, None]


@triton.jit
def _keep_intents(seed, batch_head, block, seq_len, num_intents, dropout_p, BLOCK_L: tl.constexpr):
    """The dropout keep-mask ``(BLOCK_L, INTENT_BLOCK)`` of one block of query rows."""
    rows = block * BLOCK_L + tl.arange(0, BLOCK_L)
    return dropout_keep(seed, batch_head, rows, 0, seq_len, num_intents, dropout_p, INTENT_BLOCK)


@triton.jit
def _query_block(batch_head, seq_len, block, BLOCK_L: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Offsets and in-range mask of one block of query rows of one (batch, head)."""
    rows = block * BLOCK_L + tl.arange(0, BLOCK_L)
    dims = tl.arange(0, HEAD_DIM)
    offsets = (batch_head.to(tl.int64) * seq_len + rows[:, None]) * HEAD_DIM + dims[None, :]
    return offsets, rows[:, None] < seq_len


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not mean a new compile
def _cross_attention_fwd_kernel(
    Q, K, V, INTENT_MASK, OUT,
    seq_len, num_heads, num_intents, qk_scale, seed, dropout_p, dropout_scale,
    HAS_MASK: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_L: tl.constexpr,
    FP32_DOT: tl.constexpr,
):
    block = tl.program_id(0)
    batch_head = tl.program_id(1)
    k, v, visible = _load_intents(K, V, INTENT_MASK, batch_head, num_heads, num_intents,
                                  HAS_MASK, HEAD_DIM)
    offsets, in_range = _query_block(batch_head, seq_len, block, BLOCK_L, HEAD_DIM)
    q = tl.load(Q + offsets, mask=in_range, other=0.0)
    probs = _intent_probabilities(q, k, visible, qk_scale, FP32_DOT)
    if HAS_DROPOUT:
        keep = _keep_intents(seed, batch_head, block, seq_len, num_intents, dropout_p, BLOCK_L)
        probs = drop(probs, keep, dropout_scale)
    out = dot(probs.to(v.dtype), v, None, FP32_DOT)
    tl.store(OUT + offsets, out.to(OUT.dtype.element_ty), mask=in_range)


@triton.jit(do_not_specialize=["seed"])
def _cross_attention_bwd_kernel(
    Q, K, V, INTENT_MASK, GRAD_OUT, GRAD_Q, GRAD_K_PARTIAL, GRAD_V_PARTIAL,
    seq_len, num_heads, num_intents, scale, qk_scale, blocks_per_chunk, seed, dropout_p, dropout_scale,
    HAS_MASK: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_L: tl.constexpr,
    FP32_DOT: tl.constexpr,
):
    chunk = tl.program_id(0)
    batch_head = tl.program_id(1)
    k, v, visible = _load_intents(K, V, INTENT_MASK, batch_head, num_heads, num_intents,
                                  HAS_MASK, HEAD_DIM)
    grad_k = tl.zeros([INTENT_BLOCK, HEAD_DIM], dtype=tl.float32)
    grad_v = tl.zeros([INTENT_BLOCK, HEAD_DIM], dtype=tl.float32)
    first_block = chunk * blocks_per_chunk
    last_block = tl.minimum(first_block + blocks_per_chunk, tl.cdiv(seq_len, BLOCK_L))
    for block in range(first_block, last_block):
        offsets, in_range = _query_block(batch_head, seq_len, block, BLOCK_L, HEAD_DIM)
        q = tl.load(Q + offsets, mask=in_range, other=0.0)
        grad_out = tl.load(GRAD_OUT + offsets, mask=in_range, other=0.0)
        probs = _intent_probabilities(q, k, visible, qk_scale, FP32_DOT)
        grad_probs = dot(grad_out, tl.trans(v), None, FP32_DOT)
        kept_probs = probs
        if HAS_DROPOUT:
            keep = _keep_intents(seed, batch_head, block, seq_len, num_intents, dropout_p, BLOCK_L)
            kept_probs = drop(probs, keep, dropout_scale)
            grad_probs = drop(grad_probs, keep, dropout_scale)
        # Softmax backward; the row sum of probs·grad_probs is dO·O, computed in registers.
        grad_scores = probs * (grad_probs - tl.sum(probs * grad_probs, 1)[:, None])
        grad_scores = grad_scores.to(q.dtype)
        grad_q = dot(grad_scores, k, None, FP32_DOT) * scale
        tl.store(GRAD_Q + offsets, grad_q.to(GRAD_Q.dtype.element_ty), mask=in_range)
        grad_v = dot(tl.trans(kept_probs.to(q.dtype)), grad_out, grad_v, FP32_DOT)
        grad_k = dot(tl.trans(grad_scores), q, grad_k, FP32_DOT)
    intents = tl.arange(0, INTENT_BLOCK)
    dims = tl.arange(0, HEAD_DIM)
    num_chunks = tl.num_programs(0)
    partial = ((batch_head.to(tl.int64) * num_chunks + chunk) * num_intents + intents[:, None]) * HEAD_DIM
    present = (intents < num_intents)[:, None]
    tl.store(GRAD_K_PARTIAL + partial + dims[None, :], grad_k * scale, mask=present)
    tl.store(GRAD_V_PARTIAL + partial + dims[None, :], grad_v, mask=present)


class _Config(NamedTuple):
    block_rows: int  # query rows per program
    num_warps: int
    num_stages: int


# Elements of a (query rows × head dim) tile a program can keep in registers without
# spilling, read off `scripts/compile_triton_kernels.py` (sm_90, every head dim): IEEE fp32
# dots run on FMA units and hold far more than tensor-core dots, and the backward holds
# five tiles (q, dO, dq and the dk, dv accumulators) where the forward holds two.
_TILE_BUDGET = {("forward", True): 4096, ("forward", False): 8192, ("backward", True): 2048, ("backward", False): 4096}
# With attention dropout the Philox mask needs registers too: the fp32 forward spilled at 64
# rows × head dim 64 (32 B per thread).
_DROPOUT_TILE_BUDGET = {("forward", True): 2048}
_MAX_BLOCK_ROWS = 64


def _config(pass_name: str, head_dim: int, dtype: torch.dtype, dropout: bool) -> _Config:
    """Rows, warps and pipeline stages of a launch; 16 rows under the interpreter so tests
    cover several blocks."""
    if is_interpreting():
        return _Config(16, 1, 1)
    fp32_dot = needs_fp32_dot(dtype)
    budget = _TILE_BUDGET[pass_name, fp32_dot]
    if dropout:
        budget = _DROPOUT_TILE_BUDGET.get((pass_name, fp32_dot), budget)
    rows = max(16, min(_MAX_BLOCK_ROWS, budget // head_dim))
    # Pipelining the fp32 backward's loop (prefetching the next q, dO) spills at every head
    # dim: thousands of bytes per thread at the default 3 stages.
    stages = 1 if pass_name == "backward" and fp32_dot else 3
    return _Config(rows, 8 if head_dim == 128 else 4, stages)


def _processor_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1  # the interpreter runs programs one after another


def _reduction_chunks(num_blocks: int, batch_heads: int, device: torch.device) -> Tuple[int, int]:
    """(chunks per (batch, head), blocks per chunk) for the backward's split of L.  At least
    one chunk, so dk and dv are written (zeros) even when L = 0."""
    target_programs = PROGRAMS_PER_PROCESSOR * _processor_count(device)
    wanted_chunks = triton.cdiv(target_programs, max(batch_heads, 1))
    blocks_per_chunk = max(1, triton.cdiv(num_blocks, wanted_chunks))
    return max(1, triton.cdiv(num_blocks, blocks_per_chunk)), blocks_per_chunk


def intent_cross_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    intent_mask: Optional[torch.Tensor],
    scale: float,
    dropout_p: float,
    seed: int,
) -> torch.Tensor:
    """Output ``(B, H, L, D)`` for contiguous q, k, v."""
    batch, heads, seq_len, head_dim = q.shape
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    config = _config("forward", head_dim, q.dtype, dropout_p > 0)
    grid = (triton.cdiv(seq_len, config.block_rows), batch * heads)
    _cross_attention_fwd_kernel[grid](
        q, k, v, mask_pointer(intent_mask, q), out,
        seq_len, heads, k.shape[2], scale * LOG2_E, seed, dropout_p, 1.0 / (1.0 - dropout_p),
        HAS_MASK=intent_mask is not None, HAS_DROPOUT=dropout_p > 0, HEAD_DIM=head_dim, BLOCK_L=config.block_rows,
        FP32_DOT=needs_fp32_dot(q.dtype), num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return out


def intent_cross_attention_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    intent_mask: Optional[torch.Tensor],
    scale: float,
    dropout_p: float,
    seed: int,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) for contiguous inputs, redrawing the forward's dropout mask from ``seed``."""
    batch, heads, seq_len, head_dim = q.shape
    num_intents = k.shape[2]
    config = _config("backward", head_dim, q.dtype, dropout_p > 0)
    chunks, blocks_per_chunk = _reduction_chunks(triton.cdiv(seq_len, config.block_rows), batch * heads, q.device)
    grad_q = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    partial_shape = (batch, heads, chunks, num_intents, head_dim)
    grad_k_partial = torch.empty(partial_shape, dtype=torch.float32, device=q.device)
    grad_v_partial = torch.empty(partial_shape, dtype=torch.float32, device=q.device)
    _cross_attention_bwd_kernel[(chunks, batch * heads)](
        q, k, v, mask_pointer(intent_mask, q), grad_out, grad_q, grad_k_partial, grad_v_partial,
        seq_len, heads, num_intents, scale, scale * LOG2_E, blocks_per_chunk, seed, dropout_p, 1.0 / (1.0 - dropout_p),
        HAS_MASK=intent_mask is not None, HAS_DROPOUT=dropout_p > 0, HEAD_DIM=head_dim, BLOCK_L=config.block_rows,
        FP32_DOT=needs_fp32_dot(q.dtype), num_warps=config.num_warps, num_stages=config.num_stages,
    )
    grad_k = grad_k_partial.sum(dim=2).to(k.dtype)
    grad_v = grad_v_partial.sum(dim=2).to(v.dtype)
    return grad_q, grad_k, grad_v
