"""What the trainer and the evaluator ask of a sequential recommender."""

from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# Which training examples a model learns from (see igrsr.data):
#   "sequence": one example per user sequence, a loss at every position (SASRec-style);
#   "prefix":   one example per (history prefix -> next item), a loss at the last position.
EXAMPLE_KINDS = ("sequence", "prefix")


class SequentialRecommender(nn.Module):
    """Base class: a model maps a left-padded history to scores over the whole catalog.

    Subclasses set ``example_kind`` and implement :meth:`training_loss` and :meth:`score`.
    Item ids run from 1 to ``num_items``; 0 is padding and is never recommended.
    """

    example_kind = "sequence"

    def __init__(self, num_items: int, max_len: int):
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.num_items = num_items
        self.max_len = max_len

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The loss to minimize on one batch, and its named parts for logging."""
        raise NotImplementedError

    def score(self, history: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, num_items + 1)`` of every item after ``history`` (B, L)."""
        raise NotImplementedError

    def facts(self) -> Dict[str, Any]:
        """What a run's results record about the trained model besides its metrics (default none)."""
        return {}

    @staticmethod
    def catalog_cross_entropy(
        user_vectors: torch.Tensor, item_embeddings: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Full-softmax cross-entropy over items ``1..N`` (padding is not a class)."""
        return F.cross_entropy(user_vectors @ item_embeddings[1:].T, targets - 1)

    @staticmethod
    def mask_padding_column(logits: torch.Tensor) -> torch.Tensor:
        """Padding (column 0) is never a valid prediction."""
        return torch.cat([torch.full_like(logits[:, :1], float("-inf")), logits[:, 1:]], dim=1)
