"""SASRec (Kang & McAuley, 2018): a causal transformer over the item history.

Also IGR-SR's stage-1 backbone, whose frozen encoder becomes the Latent Intent Distiller.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..eval.scores import TableScores
from ..nn import CausalTransformerLayer, Dropout, use_backend
from .base import SequentialRecommender, TransformerConfig


@dataclass(frozen=True)
class SASRecConfig(TransformerConfig):
    """SASRec's options.  Defaults: Kang & McAuley (ICDM 2018) for sparse data such as Amazon
    Beauty — ``max_len`` 50, 2 blocks, dropout 0.5; hidden size 64 and 2 heads as in the
    S3-Rec/ICLRec benchmarks these data files come from (the paper: 50 and 1).  The loss is
    the full-catalog cross-entropy IGR-SR trains with (the paper: BCE with one sampled
    negative, ``loss="bce"``)."""


class ItemSequenceEmbedding(nn.Module):
    """Item embeddings scaled by sqrt(d_item) plus learned positions counted from the end.

    Positions count back from the most recent item (it has position 0), so the amount of
    left padding never changes what a real item receives.  ``d_item`` (default ``d_model``)
    is the item table's width; a model that concatenates more features to each item
    (SSE-PT's user embedding) gives it a narrower item table and calls :meth:`add_positions`.
    """

    def __init__(self, num_items: int, max_len: int, d_model: int, dropout: float, d_item: Optional[int] = None):
        super().__init__()
        d_item = d_model if d_item is None else d_item
        self.items = nn.Embedding(num_items + 1, d_item, padding_idx=0)
        self.positions = nn.Embedding(max_len, d_model)
        self.dropout = Dropout(dropout)
        self.scale = math.sqrt(d_item)
        nn.init.normal_(self.items.weight, std=d_item**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.add_positions(self.items(history) * self.scale, history)

    def add_positions(self, tokens: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Add positions to token vectors ``(B, L, d_model)`` of ``history``, then dropout and padding."""
        length = history.shape[1]
        if length > self.positions.num_embeddings:
            raise ValueError(
                f"history has length {length} but the model was built with max_len={self.positions.num_embeddings}"
            )
        from_end = torch.arange(length - 1, -1, -1, device=history.device)
        x = tokens + self.positions(from_end)
        return self.dropout(x) * (history > 0).unsqueeze(-1).to(x.dtype)


class SASRecEncoder(nn.Module):
    """Embedding, causal transformer layers and a final LayerNorm."""

    def __init__(
        self,
        num_items: int,
        max_len: int,
        d_model: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        backend: str = "auto",
        d_item: Optional[int] = None,
    ):
        super().__init__()
        self.embedding = ItemSequenceEmbedding(num_items, max_len, d_model, dropout, d_item)
        # ``backend`` is the model's: each layer's op runs it where that op has it (use_backend).
        self.layers = use_backend(
            nn.ModuleList(CausalTransformerLayer(d_model, num_heads, dropout) for _ in range(num_layers)), backend
        )
        self.final_norm = nn.LayerNorm(d_model)

    @classmethod
    def from_config(cls, num_items: int, config: TransformerConfig, **changes) -> "SASRecEncoder":
        """The encoder a model's config describes; ``changes`` replace some of its arguments."""
        arguments = dict(
            num_items=num_items,
            max_len=config.max_len,
            d_model=config.d_model,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            dropout=config.dropout,
            backend=config.backend,
        )
        return cls(**{**arguments, **changes})

    def transform(self, x: torch.Tensor, padding_mask: torch.Tensor, num_prefix: int = 0) -> torch.Tensor:
        """Run already-embedded tokens (B, L, d) through the layers."""
        for layer in self.layers:
            x = layer(x, padding_mask, num_prefix)
        return self.final_norm(x)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        padding_mask = history > 0
        return self.transform(self.embedding(history), padding_mask)


class SASRec(SequentialRecommender):
    """SASRec trained with its catalog loss (default the full-catalog cross-entropy; ``loss="bce"``
    the paper's BCE with one sampled negative).

    ``SASRec(num_items, config)`` or ``SASRec(num_items, dropout=0.2, ...)``: the options are
    :class:`SASRecConfig`'s fields.
    """

    example_kind = "sequence"
    Config = SASRecConfig

    def __init__(self, num_items: int, config: Optional[SASRecConfig] = None, **options):
        super().__init__(num_items, config, options)
        self.encoder = SASRecEncoder.from_config(num_items, self.config)

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.encoder.embedding.items.weight

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        hidden = self.encoder(batch["history"])
        targets = batch["targets"]
        real = targets > 0
        loss = self.catalog_loss(hidden[real], self.item_embeddings, targets[real])
        return loss, {"loss": loss.detach()}

    def user_vector(self, history: torch.Tensor) -> torch.Tensor:
        return self.encoder(history)[:, -1]

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> TableScores:
        return TableScores(self.user_vector(history), self.item_embeddings)
