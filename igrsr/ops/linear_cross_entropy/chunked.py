"""Backend ``chunked``: linear cross-entropy in PyTorch over chunks of classes, on any device.

The forward sweeps the classes chunk by chunk with an online log-sum-exp, keeping only each
row's running max and sum of exponentials (the target logit is one dot product per row);
the backward sweeps again, recomputing each chunk's logits, and turns them into that chunk's
rows of ``grad_weight`` and its share of ``grad_hidden``.  Within a chunk the rows go in
blocks, so that one logits tile stays in the cache whatever the batch.  Memory beyond the
inputs and their gradients: one tile.  Both sweeps are ``torch.library`` custom ops with fake
implementations and registered autograd, so ``torch.compile`` traces them without a break.

Only the rows not ignored take part (they are gathered first).  The smoothing term of the
gradient is folded into each tile's probabilities and the target term (one class per row) is
applied once, outside the sweep; everything accumulates in float32 before any cast.
"""

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import dispatcher

# Classes per chunk, and logits per tile (rows per block = TILE_ELEMENTS // chunk).  On the
# 2-core CPU this was tuned on, tiles of 0.5M-2M logits ran fastest; forward + backward at
# 12,800 rows x 65,536 classes took 10.2 ns per logit in tiles of 2,048 rows x 1,024 classes,
# 11.4 ns with all 12,800 rows in one tile (52 MB, out of the cache).
DEFAULT_CHUNK_SIZE = 1024
TILE_ELEMENTS = 2**21


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _kept_rows(hidden: Tensor, targets: Tensor, ignore_index: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(indices of the rows not ignored, their hidden states, their targets)."""
    rows = (targets != ignore_index).nonzero().squeeze(1)
    return rows, hidden.index_select(0, rows), targets.index_select(0, rows)


def _tiles(hidden: Tensor, weight: Tensor, chunk_size: int, dtype: torch.dtype):
    """(class start, class end, weight chunk, row start, row end, logits tile) over chunks of
    classes and, within each, blocks of rows; every tile is written into one reused buffer."""
    rows_per_block = max(1, TILE_ELEMENTS // chunk_size)
    buffer = hidden.new_empty(min(rows_per_block, hidden.shape[0]) * min(chunk_size, weight.shape[0]), dtype=dtype)
    for start in range(0, weight.shape[0], chunk_size):
        end = min(start + chunk_size, weight.shape[0])
        weight_chunk = weight[start:end].to(dtype)
        for row_start in range(0, hidden.shape[0], rows_per_block):
            row_end = min(row_start + rows_per_block, hidden.shape[0])
            logits = buffer[: (row_end - row_start) * (end - start)].view(row_end - row_start, end - start)
            torch.mm(hidden[row_start:row_end], weight_chunk.T, out=logits)
            yield start, end, weight_chunk, row_start, row_end, logits


def row_logsumexp(hidden: Tensor, weight: Tensor, chunk_size: int) -> Tensor:
    """``logsumexp(hidden @ weight.T, dim=1)`` by an online log-sum-exp over chunks of classes."""
    running_max = hidden.new_full((hidden.shape[0],), float("-inf"))
    running_sum = hidden.new_zeros(hidden.shape[0])
    for _, _, _, row_start, row_end, logits in _tiles(hidden, weight, chunk_size, hidden.dtype):
        block_max, block_sum = running_max[row_start:row_end], running_sum[row_start:row_end]
        new_max = torch.maximum(block_max, logits.amax(dim=1))
        logits.sub_(new_max[:, None]).exp_()
        block_sum.mul_(torch.exp(block_max - new_max)).add_(logits.sum(dim=1))
        block_max.copy_(new_max)
    return running_max + running_sum.log()


def row_losses_and_lse(
    hidden: Tensor, weight: Tensor, targets: Tensor, ignore_index: int, label_smoothing: float, logsumexp_of_rows
) -> Tuple[Tensor, Tensor]:
    """(per-row losses, per-row log-sum-exp) in the compute dtype, 0 on ignored rows, with the
    log-sum-exp of the kept rows from ``logsumexp_of_rows(kept_hidden, weight)`` (a backend's
    sweep over the classes): loss = lse - (1 - ε) target logit - ε mean logit."""
    rows, kept_hidden, kept_targets = _kept_rows(hidden, targets, ignore_index)
    dtype = compute_dtype(hidden.dtype)
    row_losses = hidden.new_zeros(hidden.shape[0], dtype=dtype)
    row_lse = torch.zeros_like(row_losses)
    if rows.numel() == 0:
        return row_losses, row_lse
    lse = logsumexp_of_rows(kept_hidden, weight)
    kept_hidden = kept_hidden.to(dtype)
    target_logits = (kept_hidden * weight.index_select(0, kept_targets).to(dtype)).sum(dim=1)
    losses = lse - (1.0 - label_smoothing) * target_logits
    if label_smoothing:
        # The smoothed term needs the mean logit of each row: hidden @ (mean of weight's rows).
        mean_class = weight.sum(dim=0, dtype=dtype) / weight.shape[0]
        losses = losses - label_smoothing * (kept_hidden @ mean_class)
    return row_losses.index_copy_(0, rows, losses), row_lse.index_copy_(0, rows, lse)


@torch.library.custom_op("igrsr::linear_cross_entropy_chunked", mutates_args=())
def linear_cross_entropy_chunked(
    hidden: Tensor, weight: Tensor, targets: Tensor, ignore_index: int, label_smoothing: float, chunk_size: int
) -> Tuple[Tensor, Tensor]:
    """(per-row losses, per-row log-sum-exp), both in the compute dtype and 0 on ignored rows;
    the log-sum-exp is kept for the backward (not differentiable)."""
    return row_losses_and_lse(
        hidden,
        weight,
        targets,
        ignore_index,
        label_smoothing,
        lambda kept_hidden, weight: row_logsumexp(kept_hidden.to(compute_dtype(hidden.dtype)), weight, chunk_size),
    )


@linear_cross_entropy_chunked.register_fake
def _(hidden, weight, targets, ignore_index, label_smoothing, chunk_size):
    row_losses = hidden.new_empty(hidden.shape[0], dtype=compute_dtype(hidden.dtype))
    return row_losses, torch.empty_like(row_losses)


def gradients(
    grad_row_losses: Tensor,
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    row_lse: Tensor,
    ignore_index: int,
    label_smoothing: float,
    kept_gradients,
) -> Tuple[Tensor, Tensor]:
    """(grad_hidden, grad_weight), with ``kept_gradients(kept_hidden, weight, kept_targets,
    row_grads, lse, label_smoothing)`` (a backend's second sweep) giving the kept rows' grad
    hidden in the compute dtype and the whole grad weight.  For a kept row i and class j the
    logit's gradient is ``g_i (p_ij - ε / N) - g_i (1 - ε) [j = t_i]``, ``p`` recomputed from
    ``row_lse``."""
    rows, kept_hidden, kept_targets = _kept_rows(hidden, targets, ignore_index)
    grad_hidden = torch.zeros_like(hidden)
    if rows.numel() == 0:
        return grad_hidden, torch.zeros_like(weight)
    row_grads = grad_row_losses.index_select(0, rows).to(compute_dtype(hidden.dtype))
    kept_grad_hidden, grad_weight = kept_gradients(
        kept_hidden, weight, kept_targets, row_grads, row_lse.index_select(0, rows), label_smoothing
    )
    return grad_hidden.index_copy_(0, rows, kept_grad_hidden.to(hidden.dtype)), grad_weight


def chunked_gradients(
    kept_hidden: Tensor,
    weight: Tensor,
    kept_targets: Tensor,
    row_grads: Tensor,
    lse: Tensor,
    label_smoothing: float,
    chunk_size: int,
) -> Tuple[Tensor, Tensor]:
    """The backward sweep over tiles: each tile's logits recomputed and turned into
    ``g (p - ε / N)``, then its two products; the target term ``-g (1 - ε)`` at each row's own
    class is one gather and one scatter after the sweep."""
    kept_hidden = kept_hidden.to(row_grads.dtype)
    grad_weight = torch.zeros_like(weight, dtype=row_grads.dtype)
    smoothing_per_class = label_smoothing / weight.shape[0]
    kept_grad_hidden = torch.zeros_like(kept_hidden)
    for start, end, weight_chunk, row_start, row_end, logits in _tiles(
        kept_hidden, weight, chunk_size, row_grads.dtype
    ):
        grad_logits = logits.sub_(lse[row_start:row_end, None]).exp_()
        if smoothing_per_class:
            grad_logits.sub_(smoothing_per_class)
        grad_logits.mul_(row_grads[row_start:row_end, None])
        kept_grad_hidden[row_start:row_end].addmm_(grad_logits, weight_chunk)
        grad_weight[start:end].addmm_(grad_logits.T, kept_hidden[row_start:row_end])
    target_grads = ((1.0 - label_smoothing) * row_grads)[:, None]
    kept_grad_hidden.sub_(target_grads * weight.index_select(0, kept_targets).to(row_grads.dtype))
    grad_weight.index_add_(0, kept_targets, target_grads * kept_hidden, alpha=-1)
    return kept_grad_hidden, grad_weight.to(weight.dtype)


@torch.library.custom_op("igrsr::linear_cross_entropy_chunked_backward", mutates_args=())
def linear_cross_entropy_chunked_backward(
    grad_row_losses: Tensor,
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    row_lse: Tensor,
    ignore_index: int,
    label_smoothing: float,
    chunk_size: int,
) -> Tuple[Tensor, Tensor]:
    """(grad_hidden, grad_weight) by :func:`chunked_gradients`."""
    return gradients(
        grad_row_losses,
        hidden,
        weight,
        targets,
        row_lse,
        ignore_index,
        label_smoothing,
        functools.partial(chunked_gradients, chunk_size=chunk_size),
    )


@linear_cross_entropy_chunked_backward.register_fake
def _(grad_row_losses, hidden, weight, targets, row_lse, ignore_index, label_smoothing, chunk_size):
    return torch.empty_like(hidden), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    hidden, weight, targets, ignore_index, label_smoothing, chunk_size = inputs
    _, row_lse = output
    ctx.mark_non_differentiable(row_lse)
    ctx.save_for_backward(hidden, weight, targets, row_lse)
    ctx.options = (ignore_index, label_smoothing, chunk_size)


def _backward(ctx, grad_row_losses, grad_row_lse):
    hidden, weight, targets, row_lse = ctx.saved_tensors
    grad_hidden, grad_weight = linear_cross_entropy_chunked_backward(
        grad_row_losses.contiguous(), hidden, weight, targets, row_lse, *ctx.options
    )
    return grad_hidden, grad_weight, None, None, None, None


linear_cross_entropy_chunked.register_autograd(_backward, setup_context=_setup_context)


def linear_cross_entropy_chunked_impl(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    ignore_index: int,
    label_smoothing: float,
    chunk_size: Optional[int],
) -> Tensor:
    """The dispatcher's entry: same arguments as the reference; per-row losses."""
    row_losses, _ = linear_cross_entropy_chunked(
        hidden.contiguous(),
        weight.contiguous(),
        targets.contiguous(),
        ignore_index,
        label_smoothing,
        chunk_size or DEFAULT_CHUNK_SIZE,
    )
    return row_losses


# Below this many logits "auto" leaves the catalog to the reference: its one product of
# rows x N fits the caches, and the chunked sweeps' extra product costs about what it saves
# (measured on a 2-core CPU, whole training steps: IGR-SR's 256 x 12,101 per batch 0.89-1.05x
# chunked, SASRec's 1,450 x 12,101 1.4-1.6x; scripts/measure_training_speed.py, benchmarks/).
SMALL_LOGITS = 2**22


def worth_chunking(hidden: Tensor, weight: Tensor, *rest) -> bool:
    return hidden.shape[0] * weight.shape[0] > SMALL_LOGITS


dispatcher.register("chunked", linear_cross_entropy_chunked_impl, preference=50, supports=worth_chunking)
