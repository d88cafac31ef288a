"""SSE-PT (Wu et al., RecSys 2020): SASRec personalized with a user embedding, regularized by SSE.

Recipe followed (paper and official code):

* Each input item embedding (width ``d_model``, scaled by its square root) is concatenated
  with the user's embedding (width ``user_dim``, likewise scaled), so the transformer is
  ``d_model + user_dim`` wide; positions are learned at that full width.
* Output: the paper scores item ``j`` with the hidden state against ``[item_j ; user]``.  The
  user half adds the same number to every item of a row, which changes neither the softmax
  cross-entropy nor the ranking, so only the item half is computed.
* Stochastic Shared Embeddings (SSE-SE) during training: with probability ``sse_user_prob``
  a sequence's user id is replaced by a uniformly random user, and with probability
  ``sse_item_prob`` each input item by a uniformly random item (targets are kept).  The
  defaults are the official ML-1M recommendation (user threshold 0.08, item threshold 0.9 in
  the code's keep-probability convention).
* Training on all positions with the full-catalog cross-entropy, like this package's SASRec.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..config import option
from ..eval.scores import TableScores
from .base import SequentialRecommender, TransformerConfig, check_heads
from .sasrec import SASRecEncoder


@dataclass(frozen=True)
class SSEPTConfig(TransformerConfig):
    """SSE-PT's options.  The SSE probabilities are the official code's ML-1M recommendation
    (user threshold 0.08, item threshold 0.9 in its keep-probability convention); the encoder
    follows this package's SASRec (the paper: 50 + 50 wide, dropout 0.2 on ML-1M)."""

    user_dim: Optional[int] = option(None, "SSE-PT: width of the user embedding (default d_model)", ge=1)
    sse_user_prob: float = option(0.92, "SSE-PT: probability of swapping the user id", ge=0, le=1)
    sse_item_prob: float = option(0.1, "SSE-PT: probability of swapping an input item", ge=0, le=1)

    def check(self) -> None:
        super().check()
        check_heads(self.d_model + (self.user_dim or self.d_model), self.num_heads)


class SSEPT(SequentialRecommender):
    """SASRec over ``[item ; user]`` embeddings with SSE on user and input item ids; options:
    :class:`SSEPTConfig`."""

    example_kind = "sequence"
    Config = SSEPTConfig

    def __init__(self, num_items: int, num_users: int, config: Optional[SSEPTConfig] = None, **options):
        super().__init__(num_items, config, options)
        if num_users < 1:
            raise ValueError(f"num_users must be >= 1, got {num_users}")
        config = self.config
        d_model = config.d_model
        user_dim = d_model if config.user_dim is None else config.user_dim
        self.num_users = num_users
        self.sse_user_prob = config.sse_user_prob
        self.sse_item_prob = config.sse_item_prob
        self.encoder = SASRecEncoder.from_config(num_items, config, d_model=d_model + user_dim, d_item=d_model)
        self.users = nn.Embedding(num_users, user_dim)
        nn.init.normal_(self.users.weight, std=user_dim**-0.5)
        self.user_scale = math.sqrt(user_dim)

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.encoder.embedding.items.weight

    def hidden_states(self, history: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, L, d_model + user_dim)``; their item half scores the catalog."""
        embedding = self.encoder.embedding
        items = embedding.items(history) * embedding.scale
        user_vectors = (self.users(users) * self.user_scale)[:, None].expand(-1, history.shape[1], -1)
        tokens = embedding.add_positions(torch.cat([items, user_vectors], dim=-1), history)
        return self.encoder.transform(tokens, history > 0)[..., : self.item_embeddings.shape[1]]

    def shared_embedding_ids(self, history: torch.Tensor, users: torch.Tensor):
        """SSE-SE: swap user ids and real input item ids for uniformly random ones."""
        swap_user = torch.rand(users.shape, device=users.device) < self.sse_user_prob
        users = torch.where(swap_user, torch.randint_like(users, self.num_users), users)
        swap_item = (torch.rand(history.shape, device=history.device) < self.sse_item_prob) & (history > 0)
        history = torch.where(swap_item, torch.randint_like(history, 1, self.num_items + 1), history)
        return history, users

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        history, users = self.shared_embedding_ids(batch["history"], batch["user"])
        targets = batch["targets"]
        real = targets > 0
        hidden = self.hidden_states(history, users)[real]
        loss = self.catalog_loss(hidden, self.item_embeddings, targets[real])
        return loss, {"loss": loss.detach()}

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> TableScores:
        if users is None:
            raise ValueError("SSE-PT is personalized: scoring needs the users' indices")
        return TableScores(self.hidden_states(history, users)[:, -1], self.item_embeddings)
