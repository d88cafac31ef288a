"""Loss modules over :mod:`igrsr.ops`."""

from typing import Optional

import torch
from torch import nn

from ..ops import backend_for, info_nce
from ..ops.validation import MIN_TEMPERATURE  # noqa: F401  (re-exported: the smallest temperature of any logit scale)


class InfoNCELoss(nn.Module):
    """InfoNCE between two views; see :func:`igrsr.ops.info_nce` for the arguments."""

    OP = "info_nce"

    def __init__(
        self,
        temperature: float = 0.1,
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
        self.backend = backend_for(self.OP, backend)

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        group_ids: Optional[torch.Tensor] = None,
        row_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
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
