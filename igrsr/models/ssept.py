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
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .base import SequentialRecommender
from .sasrec import SASRecEncoder


class SSEPT(SequentialRecommender):
    """SASRec over ``[item ; user]`` embeddings with SSE on user and input item ids."""

    example_kind = "sequence"

    def __init__(
        self,
        num_items: int,
        num_users: int,
        max_len: int = 50,
        d_model: int = 64,
        user_dim: Optional[int] = None,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.5,
        sse_user_prob: float = 0.92,
        sse_item_prob: float = 0.1,
        backend: str = "auto",
    ):
        super().__init__(num_items, max_len)
        if num_users < 1:
            raise ValueError(f"num_users must be >= 1, got {num_users}")
        for name, value in (("sse_user_prob", sse_user_prob), ("sse_item_prob", sse_item_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        user_dim = d_model if user_dim is None else user_dim
        self.num_users = num_users
        self.sse_user_prob = sse_user_prob
        self.sse_item_prob = sse_item_prob
        self.encoder = SASRecEncoder(
            num_items, max_len, d_model + user_dim, num_layers, num_heads, dropout, backend, d_item=d_model
        )
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

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, float]]:
        history, users = self.shared_embedding_ids(batch["history"], batch["user"])
        targets = batch["targets"]
        real = targets > 0
        hidden = self.hidden_states(history, users)[real]
        loss = self.catalog_cross_entropy(hidden, self.item_embeddings, targets[real])
        return loss, {"loss": loss.item()}

    def score(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> torch.Tensor:
        if users is None:
            raise ValueError("SSE-PT is personalized: score() needs the users' indices")
        hidden = self.hidden_states(history, users)[:, -1]
        return self.mask_padding_column(hidden @ self.item_embeddings.T)
