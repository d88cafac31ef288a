"""FlashAttention-style causal self-attention with key padding and always-visible prefix keys.

Structure follows Triton's tutorial 06 (fused attention, FlashAttention-2): the forward
streams key blocks through an online softmax and stores only the row log-sum-exp; the
backward recomputes the probabilities block by block, one program computing dk, dv for a
block of keys and dq for a block of queries.  Nothing L×L is ever stored.

Query row i sees key j when ``(j <= i or j < num_prefix)`` and key j is real.  A padded
query row outputs zeros: its log-sum-exp is stored as +inf, which makes every recomputed
probability of that row 0 and so its gradients 0.  Tails (L not a multiple of a block) are
masked loads; rows past L behave like padded rows.

Loops are split as in the tutorial: key blocks wholly left of a query block need no causal
mask ("off-band"), the others ("on-band", including prefix keys right of the diagonal) do.
Scores are kept in base 2 (``qk_scale = scale·log2 e``) so the kernels use exp2.

Attention dropout (``HAS_DROPOUT``) zeroes probabilities after normalization, as FlashAttention
does: the forward drops them from the weighted sum of values but not from the row sum, and
scales the output by ``1/(1-p)``; the backward redraws the same keep-mask from the positions
(``dropout_keep``) for dv and for the gradient of the probabilities.  The softmax backward's row
term ``delta = rowsum(dO·O)`` holds unchanged because O is the dropped output.

Inputs are contiguous ``(B, H, L, D)``; accumulation is fp32 for every input dtype.
"""

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ..triton_common import LOG2_E, dot, drop, dropout_keep, mask_pointer, needs_fp32_dot
from ..triton_support import is_interpreting


@triton.jit
def _key_is_real(KEY_REAL, cols, seq_len, HAS_PADDING: tl.constexpr):
    """(BLOCK,) bool: key position exists and is not padding."""
    real = cols < seq_len
    if HAS_PADDING:
        real = real & (tl.load(KEY_REAL + cols, mask=real, other=0) != 0)
    return real


@triton.jit
def _causally_visible(rows, cols, num_prefix):
    """Broadcasts ``rows`` against ``cols``: key j is visible to query i when j <= i or j is
    a prefix key.  Pass (rows[:, None], cols[None, :]) or the transpose."""
    return (cols <= rows) | (cols < num_prefix)


# --------------------------------------------------------------------------- forward


@triton.jit
def _fwd_key_blocks(acc, row_sum, row_max, q, K, V, KEY_REAL, rows, start, stop,
                    seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p,
                    CAUSAL_MASK: tl.constexpr, HAS_PADDING: tl.constexpr, HAS_DROPOUT: tl.constexpr,
                    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, FP32_DOT: tl.constexpr):
    """Online softmax over key blocks [start, stop) for one block of queries."""
    dims = tl.arange(0, HEAD_DIM)
    for block_start in range(start, stop, BLOCK_N):
        cols = block_start + tl.arange(0, BLOCK_N)
        offsets = cols[:, None] * HEAD_DIM + dims[None, :]
        in_range = cols[:, None] < seq_len
        k = tl.load(K + offsets, mask=in_range, other=0.0)
        visible = _key_is_real(KEY_REAL, cols, seq_len, HAS_PADDING)[None, :]
        if CAUSAL_MASK:
            visible = visible & _causally_visible(rows[:, None], cols[None, :], num_prefix)
        scores = dot(q, tl.trans(k), None, FP32_DOT) * qk_scale
        scores = tl.where(visible, scores, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(scores, 1))
        # Rows that have seen no visible key yet keep max -inf; shift them by 0, not -inf.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        probs = tl.math.exp2(scores - shift[:, None])
        rescale = tl.math.exp2(row_max - shift)
        row_sum = row_sum * rescale + tl.sum(probs, 1)
        if HAS_DROPOUT:  # after the row sum: dropout acts on the normalized probabilities
            keep = dropout_keep(seed, batch_head, rows, block_start, seq_len, seq_len, dropout_p, BLOCK_N)
            probs = tl.where(keep, probs, 0.0)
        v = tl.load(V + offsets, mask=in_range, other=0.0)
        acc = dot(probs.to(v.dtype), v, acc * rescale[:, None], FP32_DOT)
        row_max = new_max
    return acc, row_sum, row_max


@triton.jit(do_not_specialize=["seed"])  # a new seed every step must not mean a new compile
def _causal_attention_fwd_kernel(
    Q, K, V, KEY_REAL, OUT, LSE,
    seq_len, num_heads, num_prefix, qk_scale, seed, dropout_p, dropout_scale,
    HAS_PADDING: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, FP32_DOT: tl.constexpr,
):
    tl.static_assert(BLOCK_M % BLOCK_N == 0)
    block_start = tl.program_id(0) * BLOCK_M
    batch_head = tl.program_id(1)
    head_offset = batch_head.to(tl.int64) * seq_len * HEAD_DIM
    Q += head_offset
    K += head_offset
    V += head_offset
    OUT += head_offset
    LSE += batch_head.to(tl.int64) * seq_len
    KEY_REAL += (batch_head // num_heads).to(tl.int64) * seq_len

    rows = block_start + tl.arange(0, BLOCK_M)
    offsets = rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    in_range = rows[:, None] < seq_len
    q = tl.load(Q + offsets, mask=in_range, other=0.0)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)

    # Off-band: keys left of this query block are visible to all its rows.
    acc, row_sum, row_max = _fwd_key_blocks(
        acc, row_sum, row_max, q, K, V, KEY_REAL, rows, 0, block_start,
        seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p,
        False, HAS_PADDING, HAS_DROPOUT, HEAD_DIM, BLOCK_N, FP32_DOT)
    # On-band: the diagonal block, and prefix keys that lie beyond it.
    band_stop = tl.minimum(seq_len, tl.maximum(block_start + BLOCK_M, num_prefix))
    acc, row_sum, row_max = _fwd_key_blocks(
        acc, row_sum, row_max, q, K, V, KEY_REAL, rows, block_start, band_stop,
        seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p,
        True, HAS_PADDING, HAS_DROPOUT, HEAD_DIM, BLOCK_N, FP32_DOT)

    # Real rows always see at least themselves, so their row_sum is > 0.
    row_real = _key_is_real(KEY_REAL, rows, seq_len, HAS_PADDING)
    safe_sum = tl.where(row_real, row_sum, 1.0)
    out = tl.where(row_real[:, None], acc / safe_sum[:, None], 0.0)
    if HAS_DROPOUT:
        out = out * dropout_scale
    lse = tl.where(row_real, row_max + tl.math.log2(safe_sum), float("inf"))
    tl.store(OUT + offsets, out.to(OUT.dtype.element_ty), mask=in_range)
    tl.store(LSE + rows, lse, mask=rows < seq_len)


# --------------------------------------------------------------------------- backward


@triton.jit
def _bwd_preprocess_kernel(OUT, GRAD_OUT, DELTA, seq_len,
                           HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """delta_i = Σ_d out_id · dout_id, the row term of the softmax backward."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    batch_head = tl.program_id(1).to(tl.int64)
    offsets = (batch_head * seq_len + rows[:, None]) * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    in_range = rows[:, None] < seq_len
    out = tl.load(OUT + offsets, mask=in_range, other=0.0).to(tl.float32)
    grad_out = tl.load(GRAD_OUT + offsets, mask=in_range, other=0.0).to(tl.float32)
    tl.store(DELTA + batch_head * seq_len + rows, tl.sum(out * grad_out, 1), mask=rows < seq_len)


@triton.jit
def _dkdv_query_blocks(grad_k, grad_v, k, v, Q, GRAD_OUT, LSE, DELTA, key_start, start, stop,
                       seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p, dropout_scale,
                       CAUSAL_MASK: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, FP32_DOT: tl.constexpr):
    """Accumulate dk, dv of one key block over query blocks [start, stop), working on the
    transposed (key × query) probabilities so k and v stay the left operands."""
    cols = key_start + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    for block_start in range(start, stop, BLOCK_M):
        rows = block_start + tl.arange(0, BLOCK_M)
        in_range = rows < seq_len
        q_t = tl.load(Q + rows[None, :] * HEAD_DIM + dims[:, None], mask=in_range[None, :], other=0.0)
        # Rows past L get lse = +inf, hence probability 0, like padded rows.
        lse = tl.load(LSE + rows, mask=in_range, other=float("inf"))
        probs_t = tl.math.exp2(dot(k, q_t, None, FP32_DOT) * qk_scale - lse[None, :])
        if CAUSAL_MASK:
            probs_t = tl.where(_causally_visible(rows[None, :], cols[:, None], num_prefix), probs_t, 0.0)
        grad_out = tl.load(GRAD_OUT + rows[:, None] * HEAD_DIM + dims[None, :],
                           mask=in_range[:, None], other=0.0)
        grad_probs_t = dot(v, tl.trans(grad_out), None, FP32_DOT)
        kept_probs_t = probs_t
        if HAS_DROPOUT:
            keep_t = tl.trans(dropout_keep(seed, batch_head, rows, key_start, seq_len, seq_len, dropout_p, BLOCK_N))
            kept_probs_t = drop(probs_t, keep_t, dropout_scale)
            grad_probs_t = drop(grad_probs_t, keep_t, dropout_scale)
        grad_v = dot(kept_probs_t.to(grad_out.dtype), grad_out, grad_v, FP32_DOT)
        delta = tl.load(DELTA + rows, mask=in_range, other=0.0)
        grad_scores_t = probs_t * (grad_probs_t - delta[None, :])
        grad_k = dot(grad_scores_t.to(q_t.dtype), tl.trans(q_t), grad_k, FP32_DOT)
    return grad_k, grad_v


@triton.jit
def _dq_key_blocks(grad_q, q, grad_out, lse, delta, K, V, KEY_REAL, rows, start, stop,
                   seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p, dropout_scale,
                   CAUSAL_MASK: tl.constexpr, HAS_PADDING: tl.constexpr, HAS_DROPOUT: tl.constexpr,
                   HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, FP32_DOT: tl.constexpr):
    """Accumulate dq of one query block over key blocks [start, stop)."""
    dims = tl.arange(0, HEAD_DIM)
    for block_start in range(start, stop, BLOCK_N):
        cols = block_start + tl.arange(0, BLOCK_N)
        offsets_t = cols[None, :] * HEAD_DIM + dims[:, None]
        in_range_t = cols[None, :] < seq_len
        k_t = tl.load(K + offsets_t, mask=in_range_t, other=0.0)
        v_t = tl.load(V + offsets_t, mask=in_range_t, other=0.0)
        probs = tl.math.exp2(dot(q, k_t, None, FP32_DOT) * qk_scale - lse[:, None])
        visible = _key_is_real(KEY_REAL, cols, seq_len, HAS_PADDING)[None, :]
        if CAUSAL_MASK:
            visible = visible & _causally_visible(rows[:, None], cols[None, :], num_prefix)
        probs = tl.where(visible, probs, 0.0)
        grad_probs = dot(grad_out, v_t, None, FP32_DOT)
        if HAS_DROPOUT:
            keep = dropout_keep(seed, batch_head, rows, block_start, seq_len, seq_len, dropout_p, BLOCK_N)
            grad_probs = drop(grad_probs, keep, dropout_scale)
        grad_scores = probs * (grad_probs - delta[:, None])
        grad_q = dot(grad_scores.to(k_t.dtype), tl.trans(k_t), grad_q, FP32_DOT)
    return grad_q


@triton.jit
def _dkdv_for_key_block(Q, K, V, KEY_REAL, GRAD_OUT, LSE, DELTA, GRAD_K, GRAD_V,
                        block_start, seq_len, num_prefix, scale, qk_scale,
                        batch_head, seed, dropout_p, dropout_scale,
                        HAS_PADDING: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, FP32_DOT: tl.constexpr):
    cols = block_start + tl.arange(0, BLOCK_N)
    offsets = cols[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    in_range = cols[:, None] < seq_len
    k = tl.load(K + offsets, mask=in_range, other=0.0)
    v = tl.load(V + offsets, mask=in_range, other=0.0)
    grad_k = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    grad_v = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    # On-band: queries up to the end of this key block; from 0 when it holds prefix keys.
    band_start = tl.where(block_start < num_prefix, 0, block_start)
    band_stop = tl.minimum(block_start + BLOCK_N, seq_len)
    grad_k, grad_v = _dkdv_query_blocks(
        grad_k, grad_v, k, v, Q, GRAD_OUT, LSE, DELTA, block_start, band_start, band_stop,
        seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p, dropout_scale,
        True, HAS_DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, FP32_DOT)
    # Off-band: later queries see every key of this block.
    grad_k, grad_v = _dkdv_query_blocks(
        grad_k, grad_v, k, v, Q, GRAD_OUT, LSE, DELTA, block_start, band_stop, seq_len,
        seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p, dropout_scale,
        False, HAS_DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, FP32_DOT)
    # Padded keys were never attended: their gradients are exactly zero.
    real = _key_is_real(KEY_REAL, cols, seq_len, HAS_PADDING)[:, None]
    tl.store(GRAD_K + offsets, tl.where(real, grad_k * scale, 0.0).to(GRAD_K.dtype.element_ty), mask=in_range)
    tl.store(GRAD_V + offsets, tl.where(real, grad_v, 0.0).to(GRAD_V.dtype.element_ty), mask=in_range)


@triton.jit
def _dq_for_query_block(Q, K, V, KEY_REAL, GRAD_OUT, LSE, DELTA, GRAD_Q,
                        block_start, seq_len, num_prefix, scale, qk_scale,
                        batch_head, seed, dropout_p, dropout_scale,
                        HAS_PADDING: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, FP32_DOT: tl.constexpr):
    rows = block_start + tl.arange(0, BLOCK_M)
    offsets = rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    in_range = rows < seq_len
    q = tl.load(Q + offsets, mask=in_range[:, None], other=0.0)
    grad_out = tl.load(GRAD_OUT + offsets, mask=in_range[:, None], other=0.0)
    lse = tl.load(LSE + rows, mask=in_range, other=float("inf"))
    delta = tl.load(DELTA + rows, mask=in_range, other=0.0)
    grad_q = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    grad_q = _dq_key_blocks(
        grad_q, q, grad_out, lse, delta, K, V, KEY_REAL, rows, 0, block_start,
        seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p, dropout_scale,
        False, HAS_PADDING, HAS_DROPOUT, HEAD_DIM, BLOCK_N, FP32_DOT)
    band_stop = tl.minimum(seq_len, tl.maximum(block_start + BLOCK_M, num_prefix))
    grad_q = _dq_key_blocks(
        grad_q, q, grad_out, lse, delta, K, V, KEY_REAL, rows, block_start, band_stop,
        seq_len, num_prefix, qk_scale, batch_head, seed, dropout_p, dropout_scale,
        True, HAS_PADDING, HAS_DROPOUT, HEAD_DIM, BLOCK_N, FP32_DOT)
    tl.store(GRAD_Q + offsets, (grad_q * scale).to(GRAD_Q.dtype.element_ty), mask=in_range[:, None])


@triton.jit(do_not_specialize=["seed"])
def _causal_attention_bwd_kernel(
    Q, K, V, KEY_REAL, GRAD_OUT, LSE, DELTA, GRAD_Q, GRAD_K, GRAD_V,
    seq_len, num_heads, num_prefix, scale, qk_scale, seed, dropout_p, dropout_scale,
    HAS_PADDING: tl.constexpr, HAS_DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M1: tl.constexpr, BLOCK_N1: tl.constexpr, BLOCK_M2: tl.constexpr, BLOCK_N2: tl.constexpr,
    FP32_DOT: tl.constexpr,
):
    """Program p computes dk, dv of key block p (BLOCK_N1 keys, stepping BLOCK_M1 queries)
    and dq of query block p (BLOCK_M2 queries, stepping BLOCK_N2 keys)."""
    tl.static_assert(BLOCK_N1 == BLOCK_M2)
    tl.static_assert(BLOCK_N1 % BLOCK_M1 == 0)
    tl.static_assert(BLOCK_M2 % BLOCK_N2 == 0)
    block = tl.program_id(0)
    batch_head = tl.program_id(1)
    head_offset = batch_head.to(tl.int64) * seq_len * HEAD_DIM
    row_offset = batch_head.to(tl.int64) * seq_len
    Q += head_offset
    K += head_offset
    V += head_offset
    GRAD_OUT += head_offset
    GRAD_Q += head_offset
    GRAD_K += head_offset
    GRAD_V += head_offset
    LSE += row_offset
    DELTA += row_offset
    KEY_REAL += (batch_head // num_heads).to(tl.int64) * seq_len
    _dkdv_for_key_block(Q, K, V, KEY_REAL, GRAD_OUT, LSE, DELTA, GRAD_K, GRAD_V,
                        block * BLOCK_N1, seq_len, num_prefix, scale, qk_scale,
                        batch_head, seed, dropout_p, dropout_scale,
                        HAS_PADDING, HAS_DROPOUT, HEAD_DIM, BLOCK_M1, BLOCK_N1, FP32_DOT)
    _dq_for_query_block(Q, K, V, KEY_REAL, GRAD_OUT, LSE, DELTA, GRAD_Q,
                        block * BLOCK_M2, seq_len, num_prefix, scale, qk_scale,
                        batch_head, seed, dropout_p, dropout_scale,
                        HAS_PADDING, HAS_DROPOUT, HEAD_DIM, BLOCK_M2, BLOCK_N2, FP32_DOT)


# --------------------------------------------------------------------------- launch


class _ForwardConfig(NamedTuple):
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


class _BackwardConfig(NamedTuple):
    block_m1: int
    block_n1: int
    block_m2: int
    block_n2: int
    num_warps: int
    num_stages: int


def _forward_config(head_dim: int, dtype: torch.dtype) -> _ForwardConfig:
    """Block sizes: tutorial-like on GPU (untuned here), 16 under the interpreter so the
    tests cover several blocks and ragged tails at small L."""
    if is_interpreting():
        return _ForwardConfig(16, 16, 1, 1)
    if dtype == torch.float32:  # twice the bytes per tile: halve the tiles to fit SRAM
        return _ForwardConfig(64, 32, 4, 2)
    return _ForwardConfig(128, 64, 8 if head_dim == 128 else 4, 3)


def _backward_config(head_dim: int, dtype: torch.dtype) -> _BackwardConfig:
    if is_interpreting():
        return _BackwardConfig(16, 32, 32, 16, 1, 1)
    if dtype == torch.float32 or head_dim == 128:  # dk, dv accumulators would spill
        return _BackwardConfig(16, 64, 64, 16, 4, 2)
    return _BackwardConfig(32, 128, 128, 32, 4, 3)


def causal_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor],
    num_prefix: int,
    scale: float,
    dropout_p: float,
    seed: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(out ``(B, H, L, D)``, lse ``(B, H, L)`` fp32 in base 2) for contiguous q, k, v."""
    batch, heads, seq_len, head_dim = q.shape
    config = _forward_config(head_dim, q.dtype)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((batch, heads, seq_len), dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(seq_len, config.block_m), batch * heads)
    _causal_attention_fwd_kernel[grid](
        q, k, v, mask_pointer(key_padding_mask, q), out, lse,
        seq_len, heads, num_prefix, scale * LOG2_E, seed, dropout_p, 1.0 / (1.0 - dropout_p),
        HAS_PADDING=key_padding_mask is not None, HAS_DROPOUT=dropout_p > 0, HEAD_DIM=head_dim,
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, FP32_DOT=needs_fp32_dot(q.dtype),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return out, lse


def causal_attention_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor],
    num_prefix: int,
    scale: float,
    dropout_p: float,
    seed: int,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) for contiguous inputs, recomputing the probabilities from ``lse`` and the
    dropout mask from ``seed``."""
    batch, heads, seq_len, head_dim = q.shape
    config = _backward_config(head_dim, q.dtype)
    delta = torch.empty_like(lse)
    _bwd_preprocess_kernel[(triton.cdiv(seq_len, config.block_m2), batch * heads)](
        out, grad_out, delta, seq_len, HEAD_DIM=head_dim, BLOCK_M=config.block_m2,
    )
    grad_q, grad_k, grad_v = (torch.empty(q.shape, dtype=q.dtype, device=q.device) for _ in range(3))
    _causal_attention_bwd_kernel[(triton.cdiv(seq_len, config.block_n1), batch * heads)](
        q, k, v, mask_pointer(key_padding_mask, q), grad_out, lse, delta, grad_q, grad_k, grad_v,
        seq_len, heads, num_prefix, scale, scale * LOG2_E, seed, dropout_p, 1.0 / (1.0 - dropout_p),
        HAS_PADDING=key_padding_mask is not None, HAS_DROPOUT=dropout_p > 0, HEAD_DIM=head_dim,
        BLOCK_M1=config.block_m1, BLOCK_N1=config.block_n1,
        BLOCK_M2=config.block_m2, BLOCK_N2=config.block_n2,
        FP32_DOT=needs_fp32_dot(q.dtype), num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return grad_q, grad_k, grad_v
