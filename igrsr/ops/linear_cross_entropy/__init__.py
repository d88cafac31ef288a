"""``linear_cross_entropy``: cross-entropy of ``hidden @ weight.T``, never holding rows × N logits.

The op's boundary: input validation, the dispatcher, the reduction and the public function.
Its backends, each returning the per-row losses in float32 (0 on ignored rows):
``reference`` (:mod:`.reference`, the materialized ``F.cross_entropy``), ``chunked``
(:mod:`.chunked`, PyTorch over item chunks, any device) and ``triton`` (:mod:`.triton`, the
fused CUDA kernels in :mod:`.triton_kernels`).
"""

from typing import Optional

import torch

from ..dispatch import OpDispatcher
from ..validation import check_same, check_tensor
from .reference import linear_cross_entropy_reference

REDUCTIONS = ("mean", "sum", "none")

dispatcher = OpDispatcher("linear_cross_entropy")
dispatcher.register("reference", linear_cross_entropy_reference, preference=100)


def _check_targets(targets: torch.Tensor, num_rows: int, num_classes: int, ignore_index: int) -> None:
    check_tensor("targets", targets, 1, dtypes=(torch.int64,))
    if targets.shape[0] != num_rows:
        raise ValueError(f"targets must have shape ({num_rows},) like the rows of hidden, got {tuple(targets.shape)}")
    # A range check reads the values (a device sync); under torch.compile it would break the
    # graph, so compiled code relies on the eager runs having checked the same data path.
    if torch.compiler.is_compiling() or num_rows == 0:
        return
    out_of_range = (targets != ignore_index) & ((targets < 0) | (targets >= num_classes))
    if bool(out_of_range.any()):
        bad = targets[out_of_range][0].item()
        raise ValueError(
            f"targets must be in [0, {num_classes}) (the rows of weight) or ignore_index={ignore_index}, got {bad}"
        )


def validate_linear_cross_entropy(
    hidden, weight, targets, ignore_index, reduction, label_smoothing, chunk_size
) -> float:
    check_tensor("hidden", hidden, 2)
    check_tensor("weight", weight, 2)
    check_same("hidden", hidden, weight=weight, targets=targets)
    if weight.shape[1] != hidden.shape[1]:
        raise ValueError(
            f"weight must have shape (N, {hidden.shape[1]}) to match hidden's last dim, got {tuple(weight.shape)}"
        )
    if weight.shape[0] < 1:
        raise ValueError("weight must have at least one row (class)")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    _check_targets(targets, hidden.shape[0], weight.shape[0], ignore_index)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
    try:
        smoothing = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError(f"label_smoothing must be a real number, got {label_smoothing!r}") from None
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return smoothing


def reduce_losses(row_losses: torch.Tensor, targets: torch.Tensor, ignore_index: int, reduction: str) -> torch.Tensor:
    """``reduction`` of per-row losses that are 0 on ignored rows; ``mean`` is over the rows not
    ignored, 0 when every row is."""
    if reduction == "none":
        return row_losses
    total = row_losses.sum()
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum().clamp(min=1)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    chunk_size: Optional[int] = None,
    backend: str = "auto",
) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets, ...)`` without the rows × N logits.

    Args:
        hidden: ``(R, d)`` float32, float16 or bfloat16 (float64 runs in float64).
        weight: ``(N, d)``, same dtype and device: one row per class (item).
        targets: ``(R,)`` int64, each in ``[0, N)`` or ``ignore_index``.
        ignore_index: target value of rows that contribute 0 and get no gradient.
        reduction: ``"mean"`` over the rows not ignored (0 when every row is), ``"sum"``, or
            ``"none"`` for ``(R,)`` losses with zeros on ignored rows.
        label_smoothing: ``ε`` in ``[0, 1]``, as ``F.cross_entropy`` defines it.
        chunk_size: classes per chunk on the chunked backend (None: its default); the
            reference ignores it and the Triton kernels pick their own blocks.
        backend: ``"auto"``, ``"reference"``, ``"chunked"`` or ``"triton"`` (CUDA, or the
            interpreter by name); see :mod:`igrsr.ops.dispatch`.

    Returns the loss in ``hidden``'s dtype, accumulated in float32.
    """
    smoothing = validate_linear_cross_entropy(
        hidden, weight, targets, ignore_index, reduction, label_smoothing, chunk_size
    )
    inputs = (hidden, weight, targets, ignore_index, smoothing, chunk_size)
    impl = dispatcher.select(backend, hidden.device, inputs).impl
    return reduce_losses(impl(*inputs), targets, ignore_index, reduction).to(hidden.dtype)


from . import chunked as _chunked_backend  # noqa: E402,F401  (registers backend "chunked")
from . import triton as _triton_backend  # noqa: E402,F401  (registers backend "triton")
