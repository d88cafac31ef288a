"""Loss modules over :mod:`igrsr.ops`."""

from typing import Optional, Union

import torch
from torch import nn

from ..distributed import gather_rows, is_distributed
from ..ops import check_op_backend, info_nce, nt_xent
from ..ops.validation import MIN_TEMPERATURE  # noqa: F401  (re-exported: the smallest temperature of any logit scale)


class InfoNCELoss(nn.Module):
    """InfoNCE between two views; see :func:`igrsr.ops.info_nce` for the arguments.

    ``temperature`` may be an ``nn.Parameter`` (a learnable temperature, then a parameter of
    this module) or another one-element tensor.

    In multi-process training (and a reduction other than ``"none"``) the views of every rank
    are gathered, gradients included, so each row's negatives are the whole global batch and
    every rank computes the loss over it; ``group_ids`` must then be global (user ids).  The
    data-parallel mean of the ranks' gradients is then that loss's gradient.
    """

    OP = "info_nce"

    def __init__(
        self,
        temperature: Union[float, torch.Tensor] = 0.1,
        normalize: bool = True,
        symmetric: bool = True,
        reduction: str = "mean",
        backend: str = "auto",
    ):
        super().__init__()
        self.temperature = temperature
        self.normalize = normalize
        self.symmetric = symmetric
        self.reduction = reduction
        self.backend = check_op_backend(self.OP, backend)

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        group_ids: Optional[torch.Tensor] = None,
        row_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if is_distributed() and self.reduction != "none":
            z1, z2 = gather_rows(z1), gather_rows(z2)
            group_ids = None if group_ids is None else gather_rows(group_ids)
            row_mask = None if row_mask is None else gather_rows(row_mask)
        return info_nce(
            z1,
            z2,
            self.temperature,
            normalize=self.normalize,
            symmetric=self.symmetric,
            group_ids=group_ids,
            row_mask=row_mask,
            reduction=self.reduction,
            backend=self.backend,
        )

    def nt_xent(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        """DuoRec's / CL4SRec's NT-Xent of ``z_i, z_j`` (B, d) with this loss's temperature,
        normalisation, reduction and backend: :func:`igrsr.ops.info_nce.nt_xent` (2B anchors,
        2B − 2 negatives each; ``symmetric`` does not apply)."""
        return nt_xent(
            z_i, z_j, self.temperature, normalize=self.normalize, reduction=self.reduction, backend=self.backend
        )
