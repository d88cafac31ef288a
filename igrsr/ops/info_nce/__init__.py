"""``info_nce``: contrastive loss between two views, never needing a B×B buffer on fast paths.

The op's boundary: input validation, the dispatcher and the public function.  Its backends:
``reference`` (:mod:`.reference`), and ``cpu`` / ``cuda`` (:mod:`.compiled`, over the C++/CUDA
kernels in ``csrc/info_nce/`` compiled into ``igrsr._C``).
"""

from typing import Optional, Union

import torch

from ..dispatch import OpDispatcher
from ..validation import check_mask, check_positive_finite, check_same, check_shape, check_tensor
from .reference import info_nce_reference

REDUCTIONS = ("mean", "sum", "none")
Temperature = Union[float, torch.Tensor]

dispatcher = OpDispatcher("info_nce")
dispatcher.register("reference", info_nce_reference, preference=100)


def check_temperature(temperature: Temperature) -> Temperature:
    """A positive finite number, or a one-element float tensor holding one (kept a tensor, so a
    learnable temperature gets its gradient; reading its value once synchronises a GPU)."""
    if not isinstance(temperature, torch.Tensor):
        return check_positive_finite("temperature", temperature)
    if temperature.numel() != 1 or not temperature.is_floating_point():
        raise TypeError(
            f"temperature must be a number or a one-element float tensor, got a {temperature.dtype} tensor "
            f"of shape {tuple(temperature.shape)}"
        )
    check_positive_finite("temperature", temperature.detach().item())
    return temperature.reshape(())


def validate_info_nce(z1, z2, temperature, group_ids, row_mask, reduction) -> Temperature:
    check_tensor("z1", z1, 2)
    check_tensor("z2", z2, 2)
    check_shape("z2", z2, z1.shape)
    check_same("z1", z1, z2=z2)
    batch, dim = z1.shape
    if batch < 1 or dim < 1:
        raise ValueError(f"z1 must have at least one row and one column, got shape {tuple(z1.shape)}")
    if group_ids is not None:
        check_tensor("group_ids", group_ids, 1, dtypes=(torch.int32, torch.int64))
        check_shape("group_ids", group_ids, (batch,))
        if group_ids.device != z1.device:
            raise ValueError(f"group_ids is on {group_ids.device} but z1 is on {z1.device}")
    check_mask("row_mask", row_mask, (batch,), z1.device)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return check_temperature(temperature)


def info_nce(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: Temperature = 0.1,
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
        temperature: ``τ > 0``; logits are cosine (or dot) similarities divided by ``τ``.  A
            one-element tensor (an ``nn.Parameter``, say) gets its gradient; the compiled
            kernels take it only when it needs none, so ``auto`` runs the reference then.
        normalize: L2-normalize both views first (cosine similarity).
        symmetric: average the z1→z2 and z2→z1 losses; otherwise z1→z2 only.
        group_ids: optional integer ``(B,)``.
        row_mask: optional bool ``(B,)``, True = the row takes part.
        reduction: ``"mean"`` over the rows taking part (0 when none does), ``"sum"``, or
            ``"none"`` for a ``(B,)`` tensor with zeros on masked rows.
        backend: ``"auto"``, ``"reference"`` (any ``d``), ``"cpu"`` or ``"cuda"`` where built
            (``d`` up to 512); ``auto`` picks the first that can run these inputs.

    SimCLR's NT-Xent as DuoRec and CL4SRec use it (2B anchors, each with 2B − 2 negatives) is
    :func:`nt_xent`, this function on the two views stacked both ways.
    """
    temperature = validate_info_nce(z1, z2, temperature, group_ids, row_mask, reduction)
    inputs = (z1, z2, temperature, bool(normalize), bool(symmetric), group_ids, row_mask, reduction)
    impl = dispatcher.select(backend, z1.device, inputs).impl
    return impl(*inputs)


def nt_xent(
    z_i: torch.Tensor,
    z_j: torch.Tensor,
    temperature: Temperature = 1.0,
    *,
    normalize: bool = False,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    """NT-Xent (SimCLR; DuoRec's and CL4SRec's contrastive loss) of views ``z_i, z_j`` (B, d).

    Each of the 2B rows of ``cat[z_i, z_j]`` is an anchor; its positive is the other view of the
    same row and its negatives the other 2B − 2 rows of both views (itself excluded).  That is
    exactly ``info_nce(cat[z_i, z_j], cat[z_j, z_i], group_ids=arange(B).repeat(2),
    symmetric=False)``: the group ids take each anchor's own row out of its denominator.  The
    defaults (dot product, τ = 1) are DuoRec's ``sim="dot"``; ``normalize=True`` is its
    ``sim="cos"``.  ``reduction="none"`` gives the 2B per-anchor losses.
    """
    check_tensor("z_i", z_i, 2)
    check_tensor("z_j", z_j, 2)
    check_shape("z_j", z_j, z_i.shape)
    group_ids = torch.arange(z_i.shape[0], device=z_i.device).repeat(2)
    return info_nce(
        torch.cat([z_i, z_j]),
        torch.cat([z_j, z_i]),
        temperature,
        normalize=normalize,
        symmetric=False,
        group_ids=group_ids,
        reduction=reduction,
        backend=backend,
    )


from . import compiled as _compiled_backends  # noqa: E402,F401  (registers backends "cpu", "cuda")
