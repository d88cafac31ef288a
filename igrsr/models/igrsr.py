"""IGR-SR: intent-guided reasoning for sequential recommendation (arXiv 2512.14034).

Stage 2 of a two-stage model, built over a trained SASRec (stage 1) whose encoder is frozen:

* Latent Intent Distiller (LID): ``[P_1..P_k ; s_1..s_n ; I_1..I_m]`` through the frozen
  encoder; the outputs at the ``m`` intent positions are the raw intents ``T_I``.
* Projection: an MLP maps ``T_I`` into the reasoner's space, ``T_D``.
* Intent-aware Deliberative Reasoner (IDR): ``L`` layers of item→intent cross-attention,
  causal self-attention and a feed-forward block; the user vector is the last position.
* Intent Consistency Regularization (ICR): InfoNCE between the user vectors of two views
  with randomly masked intents.  Loss: ``CE + cl_weight · InfoNCE``.

The paper's ablations are options: ``intent_source="free"`` (w/o LID: the intents are free
learnable vectors, the same for every user), ``fusion="concat"`` (w/o cross-attention: the
intents are prepended to the item sequence as always-visible tokens of the causal
self-attention) and ``cl_weight=0`` (w/o ICR).
"""

import copy
import typing
from dataclasses import dataclass
from typing import Dict, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, option
from ..eval.scores import TableScores
from ..nn import (
    MAX_INTENTS,
    MIN_TEMPERATURE,
    CausalTransformerLayer,
    DeliberativeReasonerLayer,
    InfoNCELoss,
    use_backend,
)
from .base import SequentialRecommender, check_backend_option, check_heads
from .sasrec import SASRec, SASRecConfig, SASRecEncoder

Fusion = Literal["cross_attention", "concat"]


@dataclass(frozen=True)
class IGRSRConfig(Config):
    """IGR-SR's options over its SASRec (whose width and history length it inherits).

    The paper publishes no hyperparameters; these defaults are the design's choices (k = m = 4
    tokens, a reasoner as deep and wide as its SASRec, λ = 0.1, τ = 0.1, p_mask = 0.5) and the
    paper's ablations are options (``intent_source="free"``, ``fusion="concat"``, ``cl_weight=0``).
    """

    num_prefix: int = option(4, "IGR-SR: prefix tokens k", ge=0)
    num_intents: int = option(4, "IGR-SR: intent tokens m", ge=1, le=MAX_INTENTS)
    num_layers: int = option(2, "reasoner layers (IGR-SR)", ge=1)
    num_heads: int = option(2, "attention heads of the reasoner (IGR-SR)", ge=1)
    dropout: float = option(0.5, "dropout probability", ge=0, lt=1)
    mask_prob: float = option(0.5, "IGR-SR: probability of dropping each intent in an ICR view", ge=0, lt=1)
    temperature: float = option(0.1, "IGR-SR: InfoNCE temperature tau", ge=MIN_TEMPERATURE)
    cl_weight: float = option(0.1, "IGR-SR: InfoNCE weight lambda (0 turns ICR off)", ge=0)
    backend: str = option("auto", "kernel backend of every attention and InfoNCE layer")
    intent_source: Literal["distiller", "free"] = option(
        "distiller", "IGR-SR: intents from the LID, or free vectors (ablation w/o LID)"
    )
    fusion: Fusion = option("cross_attention", "IGR-SR: intent fusion, or concatenation (ablation w/o cross-attention)")

    def check(self) -> None:
        check_backend_option(self.backend)

    def check_backbone(self, backbone: SASRecConfig) -> None:
        """Checks against the SASRec it runs over, before that SASRec is trained."""
        check_heads(backbone.d_model, self.num_heads)


class LatentIntentDistiller(nn.Module):
    """Learnable prefix and ``<intent>`` tokens read out through a frozen SASRec encoder.

    Only the prefix and intent embeddings are trainable.  The encoder stays in eval mode
    (no dropout) and never receives gradients.  Prefix and intent tokens carry no position;
    history items keep the positions they had in pre-training.
    """

    def __init__(self, encoder: SASRecEncoder, num_prefix: int, num_intents: int):
        super().__init__()
        if num_prefix < 0:
            raise ValueError(f"num_prefix must be >= 0, got {num_prefix}")
        if num_intents < 1:
            raise ValueError(f"num_intents must be >= 1, got {num_intents}")
        self.encoder = encoder
        self.encoder.requires_grad_(False)
        d_intent = encoder.final_norm.normalized_shape[0]
        self.prefix = nn.Parameter(torch.randn(num_prefix, d_intent) * d_intent**-0.5)
        self.intents = nn.Parameter(torch.randn(num_intents, d_intent) * d_intent**-0.5)

    @property
    def d_intent(self) -> int:
        return self.intents.shape[1]

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """history (B, L) → raw intents ``T_I`` (B, m, d_intent)."""
        batch = history.shape[0]
        items = self.encoder.embedding(history)
        prefix = self.prefix.to(items.dtype).expand(batch, -1, -1)
        intents = self.intents.to(items.dtype).expand(batch, -1, -1)
        tokens = torch.cat([prefix, items, intents], dim=1)
        real = torch.ones(batch, tokens.shape[1], dtype=torch.bool, device=history.device)
        real[:, prefix.shape[1] : prefix.shape[1] + history.shape[1]] = history > 0
        hidden = self.encoder.transform(tokens, real, num_prefix=prefix.shape[1])
        return hidden[:, -intents.shape[1] :]


class FreeIntents(nn.Module):
    """Ablation "w/o LID": ``m`` learnable intent vectors, the same for every history."""

    def __init__(self, num_intents: int, d_intent: int):
        super().__init__()
        if num_intents < 1:
            raise ValueError(f"num_intents must be >= 1, got {num_intents}")
        self.intents = nn.Parameter(torch.randn(num_intents, d_intent) * d_intent**-0.5)

    @property
    def d_intent(self) -> int:
        return self.intents.shape[1]

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.intents.expand(history.shape[0], -1, -1)


class IntentProjection(nn.Module):
    """MLP from the distiller's space to the reasoner's: ``T_I → T_D``."""

    def __init__(self, d_intent: int, d_model: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_intent, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, intents: torch.Tensor) -> torch.Tensor:
        return self.net(intents)


FUSIONS = typing.get_args(Fusion)


class DeliberativeReasoner(nn.Module):
    """IDR: own item table (tied with the output layer) and positions, then ``L`` layers.

    ``fusion="cross_attention"`` is the paper's layer; ``"concat"`` (ablation) uses plain
    causal blocks over ``[T_D ; items]`` with the intents as always-visible prefix tokens
    (no positions, masked intents as padding).
    """

    def __init__(
        self,
        backbone: SASRec,
        num_layers: int,
        num_heads: int,
        dropout: float,
        backend: str,
        fusion: str = "cross_attention",
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.fusion = fusion
        d_model = backbone.item_embeddings.shape[1]
        # Warm start: the item table and positions continue from stage 1.
        self.embedding = copy.deepcopy(backbone.encoder.embedding)
        self.embedding.dropout.p = dropout
        layer_type = DeliberativeReasonerLayer if fusion == "cross_attention" else CausalTransformerLayer
        layers = nn.ModuleList(layer_type(d_model, num_heads, dropout) for _ in range(num_layers))
        self.layers = use_backend(layers, backend)
        self.final_norm = copy.deepcopy(backbone.encoder.final_norm)
        self._warm_start_decisions(backbone)

    def _warm_start_decisions(self, backbone: SASRec) -> None:
        """Start each decision block from the matching stage-1 block where shapes agree.

        The cross-attention outputs start at zero, so the fresh reasoner computes what the
        stage-1 SASRec computes and training adds the intents from there.  (With concat
        fusion the intents are visible from the start.)
        """
        for layer, trained in zip(self.layers, backbone.encoder.layers):
            decision = layer.decision if self.fusion == "cross_attention" else layer
            if decision.attention.num_heads == trained.attention.num_heads:
                decision.load_state_dict(trained.state_dict())

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.embedding.items.weight

    def forward(
        self, history: torch.Tensor, intents: torch.Tensor, intent_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """User vectors ``h_u`` (B, d): the output at the last (most recent) position."""
        padding_mask = history > 0
        x = self.embedding(history)
        if self.fusion == "concat":
            visible = torch.ones_like(intents[..., 0], dtype=torch.bool) if intent_mask is None else intent_mask
            x = torch.cat([intents.to(x.dtype), x], dim=1)
            padding_mask = torch.cat([visible, padding_mask], dim=1)
            for layer in self.layers:
                x = layer(x, padding_mask, num_prefix=intents.shape[1])
        else:
            for layer in self.layers:
                x = layer(x, intents, padding_mask, intent_mask)
        return self.final_norm(x[:, -1])


def sample_intent_masks(batch: int, num_intents: int, mask_prob: float, device) -> torch.Tensor:
    """Drop each intent with probability ``mask_prob``, always keeping at least one per row."""
    keep = torch.rand(batch, num_intents, device=device) >= mask_prob
    rescue = F.one_hot(torch.randint(num_intents, (batch,), device=device), num_intents).bool()
    return keep | (rescue & ~keep.any(dim=1, keepdim=True))


class IGRSR(SequentialRecommender):
    """IGR-SR over a trained stage-1 :class:`SASRec` ``backbone`` (copied, then frozen).

    ``backbone``: the trained SASRec; its encoder becomes the frozen distiller, and its item
    table, positions and blocks warm-start the reasoner.  Options: :class:`IGRSRConfig`
    (``IGRSR(backbone, config)`` or ``IGRSR(backbone, num_intents=3, ...)``); ``backend`` names
    the kernels of every attention and InfoNCE layer, the distiller's too (see
    :func:`igrsr.ops.backend_for`).
    """

    example_kind = "prefix"
    Config = IGRSRConfig

    def __init__(self, backbone: SASRec, config: Optional[IGRSRConfig] = None, **options):
        super().__init__(backbone.num_items, config, options, max_len=backbone.max_len)
        config = self.config
        config.check_backbone(backbone.config)
        self.num_intents = config.num_intents
        self.mask_prob = config.mask_prob
        self.cl_weight = config.cl_weight
        d_model = backbone.item_embeddings.shape[1]
        # `distiller` is where the raw intents T_I come from: the LID, or free vectors (ablation).
        if config.intent_source == "distiller":
            encoder = use_backend(copy.deepcopy(backbone.encoder), config.backend)
            self.distiller = LatentIntentDistiller(encoder, config.num_prefix, config.num_intents)
        else:
            self.distiller = FreeIntents(config.num_intents, d_model)
        self.projection = IntentProjection(self.distiller.d_intent, d_model)
        self.reasoner = DeliberativeReasoner(
            backbone, config.num_layers, config.num_heads, config.dropout, config.backend, config.fusion
        )
        self.consistency = use_backend(InfoNCELoss(config.temperature), config.backend)
        # The catalog loss (and the item counts it samples from) is its SASRec's.
        self.catalog_loss = use_backend(copy.deepcopy(backbone.catalog_loss), config.backend)

    def intents(self, history: torch.Tensor) -> torch.Tensor:
        """Projected intents ``T_D`` (B, m, d), distilled from the visible history only."""
        return self.projection(self.distiller(history))

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        history, target = batch["history"], batch["target"]
        intents = self.intents(history)
        if self.cl_weight == 0:
            ce = self.catalog_loss(self.reasoner(history, intents), self.reasoner.item_embeddings, target)
            return ce, {"loss": ce.detach(), "ce": ce.detach()}
        # One reasoner pass over three copies of the batch: all intents visible (for the
        # recommendation loss) and two views with randomly masked intents (for ICR).
        batch_size = len(history)
        views = [sample_intent_masks(batch_size, self.num_intents, self.mask_prob, history.device) for _ in range(2)]
        all_visible = torch.ones_like(views[0])
        user_vectors = self.reasoner(history.repeat(3, 1), intents.repeat(3, 1, 1), torch.cat([all_visible, *views]))
        full, first_view, second_view = user_vectors.split(batch_size)
        ce = self.catalog_loss(full, self.reasoner.item_embeddings, target)
        consistency = self.consistency(first_view, second_view, group_ids=batch["user"])
        loss = ce + self.cl_weight * consistency
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "infonce": consistency.detach()}

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> TableScores:
        return TableScores(self.reasoner(history, self.intents(history)), self.reasoner.item_embeddings)
