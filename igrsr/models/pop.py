"""Popularity: every user gets the items most often seen as a next item in training."""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ..config import Config, option
from ..eval.scores import MaterializedScores
from .base import SequentialRecommender


@dataclass(frozen=True)
class PopularityConfig(Config):
    """Popularity has no hyperparameters; ``max_len`` only shapes the examples it counts."""

    max_len: int = option(50, "history length of the examples (the counts do not depend on it)", ge=1)


class Popularity(SequentialRecommender):
    """Scores each item by how often it is a training target (every item of every training
    sequence but the first).

    It goes through the same harness as the learned models: "training" counts the targets
    of the batches it is shown and returns a zero loss, so the trainer's loop, checkpoints
    and evaluation apply unchanged.  One epoch gives the counts; more epochs multiply every
    count alike, which leaves the ranking as it is.  It has no parameters.
    """

    example_kind = "prefix"
    Config = PopularityConfig

    def __init__(self, num_items: int, config: Optional[PopularityConfig] = None, **options):
        super().__init__(num_items, config, options)
        self.register_buffer("counts", torch.zeros(num_items + 1))

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        target = batch["target"]
        self.counts.index_add_(0, target, torch.ones_like(target, dtype=self.counts.dtype))
        # Nothing to optimize: a zero the trainer can call backward() on.
        return self.counts.new_zeros((), requires_grad=True), {"loss": self.counts.new_zeros(())}

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> MaterializedScores:
        # Every row is the counts: a view, so no (B, num_items + 1) matrix is made.
        return MaterializedScores(self.counts.expand(history.shape[0], -1))
