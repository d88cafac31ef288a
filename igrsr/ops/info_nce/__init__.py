"""``info_nce``: contrastive loss between two views, never needing a B×B buffer on fast paths.

The op's boundary: input validation, the dispatcher and the public function.  Its backends:
``reference`` (:mod:`.reference`), and ``cpu`` / ``cuda`` (:mod:`.compiled`, over the C++/CUDA
kernels in ``csrc/info_nce/`` compiled into ``igrsr._C``).
"""

from typing import Optional

import torch

from ..dispatch import OpDispatcher
from ..validation import check_mask, check_same, check_shape, check_temperature, check_tensor
from .reference import info_nce_reference

REDUCTIONS = ("mean", "sum", "none")
MAX_DIM = 512

dispatcher = OpDispatcher("info_nce")
dispatcher.register("reference", info_nce_reference, preference=100)


def validate_info_nce(z1, z2, temperature, group_ids, row_mask, reduction) -> float:
    check_tensor("z1", z1, 2)
    check_tensor("z2", z2, 2)
    check_shape("z2", z2, z1.shape)
    check_same("z1", z1, z2=z2)
    batch, dim = z1.shape
    if batch < 1 or dim < 1:
        raise ValueError(f"z1 must have at least one row and one column, got shape {tuple(z1.shape)}")
    if dim > MAX_DIM:
        raise ValueError(f"z1 has {dim} features; info_nce supports up to {MAX_DIM}")
    if group_ids is not None:
        check_tensor("group_ids", group_ids, 1, dtypes=(torch.int32, torch.int64))
        check_shape("group_ids", group_ids, (batch,))
        if group_ids.device != z1.device:
            raise ValueError(f"group_ids is on {group_ids.device} but z1 is on {z1.device}")
    check_mask("row_mask", row_mask, (batch,), z1.device)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return check_temperature("temperature", temperature)


def info_nce(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    symmetric: bool = True,
    group_ids: Optional[torch.Tensor] = None,
    row_mask: Optional[torch.Tensor] = None,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    """InfoNCE between two views ``z1, z2`` of shape ``(B, d)``.

    Row ``i`` of ``z1`` and row ``i`` of ``z2`` are positives; every other row of the other
    view is a negative, except rows sharing ``group_ids[i]`` (e.g. the same user twice in a
    batch).  Rows with ``row_mask`` False are neither anchors nor negatives.

    Args:
        temperature: ``τ > 0``; logits are cosine (or dot) similarities divided by ``τ``.
        normalize: L2-normalize both views first (cosine similarity).
        symmetric: average the z1→z2 and z2→z1 losses; otherwise z1→z2 only.
        group_ids: optional integer ``(B,)``.
        row_mask: optional bool ``(B,)``, True = the row takes part.
        reduction: ``"mean"`` over the rows taking part (0 when none does), ``"sum"``, or
            ``"none"`` for a ``(B,)`` tensor with zeros on masked rows.
        backend: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"cuda"`` where built.
    """
    temperature = validate_info_nce(z1, z2, temperature, group_ids, row_mask, reduction)
    inputs = (z1, z2, temperature, bool(normalize), bool(symmetric), group_ids, row_mask, reduction)
    impl = dispatcher.select(backend, z1.device, inputs).impl
    return impl(*inputs)


from . import compiled as _compiled_backends  # noqa: E402,F401  (registers backends "cpu", "cuda")
