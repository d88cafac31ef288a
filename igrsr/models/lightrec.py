"""LightRec (Lian et al., WWW 2020): codebook-compressed item embeddings, on a SASRec encoder.

Recipe followed (the paper, and its authors' code github.com/haoyu0408/LightRec, whose run
script uses ``rnn_model='res', att_model='bilinear'``; it sets temperature 0.9 and ``d / 8``
codebooks of 256 where the defaults here are 1 and 4 of 256): ``B`` codebooks
(``num_codebooks``) of ``W`` codewords (``codebook_size``) each; an item's embedding is the
sum over codebooks of one codeword per codebook. The codeword of item ``i`` in codebook
``b`` is ``argmax_w s_b(r_i^b, c_w^b)`` with the bilinear similarity ``s_b(r, c) = rᵀ W_b
c`` over the residual ``r_i^b``: the item key ``e_i`` less the codewords chosen in codebooks
``< b``, so each codebook encodes what the others missed. The argmax is made differentiable
with the straight-through estimator over a tempered softmax (forward: the one-hot choice;
backward: the softmax's gradient).

Trained as the authors train it: a stage 2 over a trained model. The keys are the trained
SASRec's item table, frozen (the authors' ``item_embeddings``, ``trainable=False``); the
encoder starts as that SASRec's and keeps learning (their user embeddings start from the
pre-trained ones and keep learning); the codebooks start at random. Where this package
differs: the loss is its SASRec's catalog loss, by default the full-catalog cross-entropy every
model here trains with (the authors: BPR over sampled negatives, and a distillation term weighted 1e-9), the bilinear
maps start at the identity (theirs at random), and the defaults above. Codebooks start from
scratch, so LightRec trains with the common settings, not IGR-SR's shorter stage 2.
(Revision 2 learned the keys with everything else from scratch; most items' codes collided:
reports/lightrec-codes-2026-11-27.) A deployed model keeps just the codebooks and ``B``
small codes per item. The composed table replaces SASRec's item table for both the input and
the (tied) output layer.

Two options the authors' code also has, off by default as in their run script:
``codebook_choice="euclidean"`` scores a codeword by its negative squared distance to the
residual instead of the bilinear form (their ``att_model='euclidean'``), and
``codebook_start="kmeans"`` starts codebook ``b`` at the k-means centres of the residuals the
codebooks ``< b`` leave (commented out in their code).  Under the bilinear choice (an inner
product at the start) k-means codewords explain little of a key; with the Euclidean choice
the start is residual k-means quantization (reports/lightrec-stage2-2026-11-27).
"""

import copy
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, option
from ..eval.scores import TableScores
from ..nn import MIN_TEMPERATURE
from .base import SequentialRecommender
from .sasrec import SASRec

CodebookChoice = Literal["bilinear", "euclidean"]
CodebookStart = Literal["random", "kmeans"]
CODEBOOK_CHOICES = typing.get_args(CodebookChoice)
CODEBOOK_STARTS = typing.get_args(CodebookStart)


@dataclass(frozen=True)
class LightRecConfig(Config):
    """LightRec's options over its SASRec.  4 codebooks of 256 at temperature 1 are this
    package's defaults (the authors' run script: d / 8 codebooks of 256, temperature 0.9); the
    bilinear choice and the random start are their run's."""

    num_codebooks: int = option(4, "LightRec: codebooks B", ge=1)
    codebook_size: int = option(256, "LightRec: codewords per codebook W", ge=2)
    codebook_temperature: float = option(1.0, "LightRec: softmax temperature of the codes", ge=MIN_TEMPERATURE)
    codebook_choice: CodebookChoice = option("bilinear", "LightRec: how a codeword is scored")
    codebook_start: CodebookStart = option("random", "LightRec: codebooks start random or at residual k-means")


def kmeans(points: torch.Tensor, num_centres: int, iterations: int = 20) -> torch.Tensor:
    """Lloyd's k-means of ``points`` ``(N, d)``: the centres ``(num_centres, d)``.

    Starts from distinct random points (drawn with replacement when there are fewer points
    than centres); a centre left without points keeps its place.
    """
    if len(points) >= num_centres:
        picked = torch.randperm(len(points), device=points.device)[:num_centres]
    else:
        picked = torch.randint(len(points), (num_centres,), device=points.device)
    centres = points[picked].clone()
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=num_centres)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


class CodebookItemEmbedding(nn.Module):
    """An item table composed from codebooks over fixed item ``keys`` ``(N, d)``.

    Usable where an ``nn.Embedding`` item table is: ``forward(ids)`` looks items up and
    ``weight`` is the whole composed table ``(N + 1, d)``, with row 0 (padding) zero.  The keys
    are a buffer (they only decide the codes); the codebooks learn, and so do the bilinear maps
    under the bilinear choice (the Euclidean choice has none).
    """

    def __init__(
        self,
        keys: torch.Tensor,
        num_codebooks: int,
        codebook_size: int,
        temperature: float,
        choice: str = "bilinear",
        start: str = "random",
    ):
        super().__init__()
        if num_codebooks < 1 or codebook_size < 2:
            raise ValueError(f"need num_codebooks >= 1 and codebook_size >= 2, got {num_codebooks} and {codebook_size}")
        if not temperature > 0:
            raise ValueError(f"codebook_temperature must be > 0, got {temperature}")
        if choice not in CODEBOOK_CHOICES:
            raise ValueError(f"codebook_choice must be one of {CODEBOOK_CHOICES}, got {choice!r}")
        if start not in CODEBOOK_STARTS:
            raise ValueError(f"codebook_start must be one of {CODEBOOK_STARTS}, got {start!r}")
        if keys.dim() != 2:
            raise ValueError(f"keys must be (num_items, d), got shape {tuple(keys.shape)}")
        d_model = keys.shape[1]
        self.temperature = temperature
        self.choice = choice
        self.register_buffer("keys", keys.detach().clone())
        self.codebooks = nn.Parameter(torch.randn(num_codebooks, codebook_size, d_model) * d_model**-0.5)
        # W_b starts at the identity, so the first assignments are by inner product.
        self.bilinear = nn.Parameter(torch.eye(d_model).repeat(num_codebooks, 1, 1)) if choice == "bilinear" else None
        self._table: Optional[torch.Tensor] = None
        if start == "kmeans":
            self.start_from_residual_kmeans()

    def scores(self, residual: torch.Tensor, index: int) -> torch.Tensor:
        """``s_b(r, c) / T`` of every residual ``(N, d)`` and codeword of codebook ``index``: ``(N, W)``."""
        codebook = self.codebooks[index]
        if self.choice == "bilinear":
            # Map the W codewords rather than the N residuals (W_b c is far cheaper), with the
            # temperature folded in.
            return residual @ ((codebook @ self.bilinear[index].T) / self.temperature).T
        # -||r - c||^2 less -||r||^2, which no choice of c and no softmax over c sees.
        return (2 * residual @ codebook.T - codebook.pow(2).sum(dim=-1)) / self.temperature

    @torch.no_grad()
    def start_from_residual_kmeans(self, iterations: int = 20) -> None:
        """Codebook ``b`` starts at the k-means centres of what codebooks ``< b`` leave of the keys,
        each residual following the codewords this table itself chooses."""
        residual = self.keys
        for index in range(len(self.codebooks)):
            self.codebooks[index] = kmeans(residual, self.codebooks.shape[1], iterations)
            residual = residual - self.codebooks[index, self.scores(residual, index).argmax(dim=-1)]

    def encode(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Every item's codes ``(B, N)`` and its composed embedding ``(N, d)``.

        Residual encoding: codebook ``b`` encodes what codebooks ``< b`` left of the key.
        Straight-through without one-hot matrices: a codeword's value is the chosen row of
        ``C_b``; its gradient reaches the choice as that of ``softmax(s_b / T) @ C_b`` with
        ``C_b`` held fixed, so the codebooks learn only from the codewords chosen.  This is
        the textbook ``(one_hot + soft - soft.detach()) @ C_b``.
        """
        residual, composed, codes = self.keys, 0, []
        for index, codebook in enumerate(self.codebooks):
            logits = self.scores(residual, index)
            chosen = logits.argmax(dim=-1)
            relaxed = F.softmax(logits, dim=-1) @ codebook.detach()
            codeword = codebook[chosen] + (relaxed - relaxed.detach())
            composed = composed + codeword
            residual = residual - codeword
            codes.append(chosen)
        return torch.stack(codes), composed

    def codes(self) -> torch.Tensor:
        """The codeword index of every item in every codebook, ``(B, N)``: the compressed model."""
        with torch.no_grad():
            return self.encode()[0]

    def compose(self) -> torch.Tensor:
        """The composed table ``(N + 1, d)``: row 0 zero, row ``i`` the sum of item ``i``'s codewords."""
        composed = self.encode()[1]
        return torch.cat([composed.new_zeros(1, composed.shape[1]), composed])

    @contextmanager
    def composed_once(self) -> Iterator[None]:
        """Compose the table once for every read of :attr:`weight` inside the block.

        A step reads the table twice (input lookups and the tied output layer); composing it
        once halves what the codebooks cost the step.
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
    """LightRec over a trained :class:`SASRec` ``backbone``: a stage 2, as the authors train it.

    The backbone's item table becomes the frozen keys the codes are assigned from; its encoder
    is copied and keeps training (as the authors' user embeddings start from the pre-trained
    ones and keep training).  The composed table replaces the item table for the input and the
    tied output layer, so a deployed model needs no ``(N, d)`` table.

    ``backbone``: the trained SASRec.  Options: :class:`LightRecConfig` (with 4 codebooks of
    256, 32 bits per item; ``codebook_choice="euclidean"`` scores a codeword by its negative
    squared distance to the residual, ``codebook_start="kmeans"`` starts at residual k-means).
    """

    Config = LightRecConfig

    def __init__(self, backbone: SASRec, config: Optional[LightRecConfig] = None, **options):
        # The backbone's encoder is the starting point, so SASRec's own construction (a fresh
        # encoder) is skipped.
        SequentialRecommender.__init__(self, backbone.num_items, config, options, max_len=backbone.max_len)
        config = self.config
        # The catalog loss (and the item counts it samples from) is the backbone's.
        self.catalog_loss = copy.deepcopy(backbone.catalog_loss)
        self.encoder = copy.deepcopy(backbone.encoder).requires_grad_(True)
        keys = backbone.item_embeddings[1:]  # copied and detached by the table
        # SASRec reads its item table only through `encoder.embedding.items` (lookups and
        # `.weight`), so swapping in the composed table is the whole change.
        self.encoder.embedding.items = CodebookItemEmbedding(
            keys,
            config.num_codebooks,
            config.codebook_size,
            config.codebook_temperature,
            config.codebook_choice,
            config.codebook_start,
        )

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        with self.encoder.embedding.items.composed_once():
            return super().training_loss(batch)

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> TableScores:
        # The scores keep the table composed here, for every chunk they are asked for.
        with self.encoder.embedding.items.composed_once():
            return super().item_scores(history, users)

    def facts(self) -> Dict[str, Any]:
        """How many items the codes tell apart (items with equal codes share their embedding),
        and how many codewords each codebook uses."""
        codes = self.encoder.embedding.items.codes()
        return {
            "distinct_item_codes": len(torch.unique(codes.T, dim=0)),
            "codewords_used": [len(torch.unique(codebook_codes)) for codebook_codes in codes],
        }
