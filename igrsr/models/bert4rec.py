"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional transformer trained with a cloze task.

Recipe followed:

* The SASRec encoder pieces with every key visible: ``causal_attention(..., num_prefix=L)``
  lets each position attend to every real position (padding stays masked), so the one
  attention op serves both directions.
* Cloze training: each item of the training sequence (history plus its final target) is
  replaced by the ``[mask]`` token (id ``num_items + 1``) with probability ``mask_ratio``;
  a sequence where nothing was drawn gets its last item masked, the case prediction sees.
  The loss is the catalog loss (default the full-catalog cross-entropy) at the masked positions.
* Output layer: ``GELU(W h + b)`` with a LayerNorm, scored against the (tied) item table
  plus a per-item output bias.
* Prediction: append ``[mask]`` after the history and score at that position.  So the
  model sees ``max_len`` history items plus the mask slot: it has ``max_len + 1`` positions.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..config import option
from ..eval.scores import TableScores
from .base import SequentialRecommender, TransformerConfig
from .sasrec import SASRecEncoder


@dataclass(frozen=True)
class BERT4RecConfig(TransformerConfig):
    """BERT4Rec's options.  Defaults: the paper's architecture (Sun et al. 2019, §4.3: 2 layers,
    2 heads, hidden 64, dropout 0.1; ``max_len`` 50 for Beauty).  The mask proportion is tuned
    per dataset in the paper (0.6 on Beauty, 0.2 on MovieLens); 0.2 is the common
    reimplementations' default (RecBole) — tune it on validation."""

    dropout: float = option(0.1, "dropout probability", ge=0, lt=1)
    mask_ratio: float = option(0.2, "BERT4Rec: cloze masking probability", gt=0, lt=1)


class BERT4Rec(SequentialRecommender):
    """Bidirectional transformer with cloze training; options: :class:`BERT4RecConfig`."""

    example_kind = "sequence"
    Config = BERT4RecConfig

    def __init__(self, num_items: int, config: Optional[BERT4RecConfig] = None, **options):
        super().__init__(num_items, config, options)
        config = self.config
        self.mask_ratio = config.mask_ratio
        self.mask_token = num_items + 1
        # One extra item id ([mask]) and one extra position (the mask slot after a full history).
        self.encoder = SASRecEncoder.from_config(num_items + 1, config, max_len=config.max_len + 1)
        d_model = config.d_model
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model))
        self.output_bias = nn.Parameter(torch.zeros(num_items + 1))

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Bidirectional hidden states ``(B, L, d)`` of a left-padded token sequence."""
        embedded = self.encoder.embedding(tokens)
        return self.encoder.transform(embedded, tokens > 0, num_prefix=tokens.shape[1])

    @property
    def item_embeddings(self) -> torch.Tensor:
        """The output table: padding and the real items, never ``[mask]``."""
        return self.encoder.embedding.items.weight[: self.num_items + 1]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores ``(..., num_items + 1)`` over padding and the real items (never ``[mask]``)."""
        return self.head(hidden) @ self.item_embeddings.T + self.output_bias

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        # The examples hold history = seq[:-1] and targets = seq[1:], left-padded alike, so the
        # whole training sequence is the history followed by the last target.
        sequence = torch.cat([batch["history"], batch["targets"][:, -1:]], dim=1)
        masked = self.cloze_positions(sequence)
        tokens = sequence.masked_fill(masked, self.mask_token)
        hidden = self.head(self.encode(tokens)[masked])
        loss = self.catalog_loss(hidden, self.item_embeddings, sequence[masked], bias=self.output_bias)
        return loss, {"loss": loss.detach()}

    def cloze_positions(self, sequence: torch.Tensor) -> torch.Tensor:
        """Bool ``(B, L)``: the real items to mask, at least one per row (the last by default)."""
        real = sequence > 0
        masked = (torch.rand(sequence.shape, device=sequence.device) < self.mask_ratio) & real
        nothing_masked = ~masked.any(dim=1)
        masked[:, -1] |= nothing_masked
        return masked

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> TableScores:
        """The head's output against the item table plus the output bias, as :meth:`logits`."""
        mask_slot = torch.full_like(history[:, :1], self.mask_token)
        hidden = self.encode(torch.cat([history, mask_slot], dim=1))[:, -1]
        return TableScores(self.head(hidden), self.item_embeddings, self.output_bias)
