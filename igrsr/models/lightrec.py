"""LightRec (Lian et al., WWW 2020): codebook-compressed item embeddings, on a SASRec encoder.

Recipe followed: ``B`` codebooks (``num_codebooks``) of ``W`` codewords (``codebook_size``)
each; an item's embedding is the sum over codebooks of one codeword per codebook.  The
codeword of item ``i`` in codebook ``b`` is ``argmax_w s_b(e_i, c_w^b)`` with a learnable
item key ``e_i`` and the paper's bilinear similarity ``s_b(e, c) = eᵀ W_b c``; the argmax is
made differentiable with the straight-through estimator over a tempered softmax (forward:
the one-hot choice; backward: the softmax's gradient).  Only the codebooks, the bilinear
maps and the keys are learned; a deployed model keeps just the codebooks and ``B`` small
codes per item.  The composed table replaces SASRec's item table for both the input and the
(tied) output layer.  The paper's optional distillation from an uncompressed teacher is not
used: every model here trains under the same budget and loss.
"""

from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .sasrec import SASRec


class CodebookItemEmbedding(nn.Module):
    """An item table composed from codebooks, usable where an ``nn.Embedding`` item table is.

    ``forward(ids)`` looks items up and ``weight`` is the whole composed table ``(N + 1, d)``,
    with row 0 (padding) zero.
    """

    def __init__(self, num_items: int, d_model: int, num_codebooks: int, codebook_size: int, temperature: float):
        super().__init__()
        if num_codebooks < 1 or codebook_size < 2:
            raise ValueError(
                f"need num_codebooks >= 1 and codebook_size >= 2, got {num_codebooks} and {codebook_size}"
            )
        if not temperature > 0:
            raise ValueError(f"codebook_temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.keys = nn.Parameter(torch.randn(num_items, d_model) * d_model**-0.5)
        self.codebooks = nn.Parameter(torch.randn(num_codebooks, codebook_size, d_model) * d_model**-0.5)
        # W_b starts at the identity, so the first assignments are by inner product.
        self.bilinear = nn.Parameter(torch.eye(d_model).repeat(num_codebooks, 1, 1))
        self._table: Optional[torch.Tensor] = None

    def logits(self) -> torch.Tensor:
        """Tempered bilinear scores ``s_b(e_i, c_w^b) / T`` of items ``1..N``, ``(N, B, W)``."""
        # Map the B·W codewords rather than the N item keys (W_b c is far cheaper), with the
        # temperature folded in: one (N, d) x (d, B·W) product, already in softmax layout.
        mapped = torch.einsum("bde,bwe->bwd", self.bilinear, self.codebooks) / self.temperature
        return (self.keys @ mapped.flatten(0, 1).T).view(len(self.keys), *mapped.shape[:2])

    def codes(self) -> torch.Tensor:
        """The codeword index of every item in every codebook, ``(B, N)``: the compressed model."""
        return self.logits().argmax(dim=-1).T

    def compose(self) -> torch.Tensor:
        """The composed table ``(N + 1, d)``: row 0 zero, row ``i`` the sum of item ``i``'s codewords.

        Straight-through without materializing the one-hot choices: the value is the gathered
        codewords; the gradient reaches the choice as that of ``softmax(s / T) @ C`` with the
        codebooks ``C`` held fixed, so the codebooks learn only from the codewords chosen.  This
        is the textbook ``(one_hot + soft - soft.detach()) @ C`` without its ``(B, N, W)`` copies.
        """
        logits = self.logits()
        num_codebooks, codebook_size, d_model = self.codebooks.shape
        codewords = self.codebooks.reshape(-1, d_model)
        offsets = torch.arange(num_codebooks, device=logits.device) * codebook_size
        chosen = F.embedding(logits.argmax(dim=-1) + offsets, codewords).sum(1)
        relaxed = F.softmax(logits, dim=-1).flatten(1) @ codewords.detach()
        composed = chosen + (relaxed - relaxed.detach())
        return torch.cat([composed.new_zeros(1, d_model), composed])

    @contextmanager
    def composed_once(self) -> Iterator[None]:
        """Compose the table once for every read of :attr:`weight` inside the block.

        A step reads the table twice (input lookups and the tied output layer); composing it
        costs more than the rest of the step on a large catalog.
        """
        self._table = self.compose()
        try:
            yield
        finally:
            self._table = None

    @property
    def weight(self) -> torch.Tensor:
        return self.compose() if self._table is None else self._table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class LightRec(SASRec):
    """SASRec whose item table is a :class:`CodebookItemEmbedding`.

    Takes :class:`SASRec`'s options plus ``num_codebooks`` (``B``, default 4),
    ``codebook_size`` (``W``, default 256: 32 bits per item) and ``codebook_temperature``
    (the softmax temperature of the relaxation, default 1).
    """

    def __init__(
        self,
        num_items: int,
        *,
        num_codebooks: int = 4,
        codebook_size: int = 256,
        codebook_temperature: float = 1.0,
        **sasrec_options: Any,
    ):
        super().__init__(num_items, **sasrec_options)
        embedding = self.encoder.embedding
        d_model = embedding.positions.embedding_dim
        # SASRec reads its item table only through `encoder.embedding.items` (lookups and
        # `.weight`), so swapping in the composed table is the whole change.
        embedding.items = CodebookItemEmbedding(num_items, d_model, num_codebooks, codebook_size, codebook_temperature)

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, float]]:
        with self.encoder.embedding.items.composed_once():
            return super().training_loss(batch)

    def score(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> torch.Tensor:
        with self.encoder.embedding.items.composed_once():
            return super().score(history, users)
