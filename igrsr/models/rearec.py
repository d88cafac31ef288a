"""ReaRec (Tang et al., 2025, "Think before recommend"): implicit multi-step reasoning on SASRec.

After the history, the encoder's last hidden state is fed back as the next input for ``K``
reasoning steps (``reasoning_steps``).  A reasoning input is ``LayerNorm(h + r_k)`` (then
dropout), where ``r_k`` is a reasoning position embedding, separate from the item positions,
so the reasoning space is decoupled from the item encoding space; items keep the positions
they would have without reasoning.  The states are ``h_0`` (the sequence's last position, what
SASRec would use) and ``h_1..h_K`` (one per reasoning step).  Logits are ``h · Eᵀ / τ`` over the
whole catalog with the item table tied to the input (``τ = reasoning_temperature``, 0.07 in the
official code).  Training uses one example per (history prefix → next item).

Implementation choices, where the paper and the official code leave room:

* The sequence is re-encoded at every step instead of keeping a key/value cache.  The states
  are the same at evaluation; in training every step draws its own dropout masks.
* The official code turns PRL's noise on only after a warm-up of a few epochs; a model here
  does not see epochs, so the noise is on from the start.

Two learning methods, two registered models:

* ``rearec-erl`` (:class:`ReaRecERL`): Ensemble Reasoning Learning.
* ``rearec-prl`` (:class:`ReaRecPRL`): Progressive Reasoning Learning.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..config import option
from ..eval.scores import TableScores
from ..nn import MIN_TEMPERATURE, Dropout, InfoNCELoss, use_backend
from ..nn.catalog_loss import catalog_pairwise_kl
from .base import SequentialRecommender, TransformerConfig
from .sasrec import SASRecEncoder


@dataclass(frozen=True)
class ReaRecConfig(TransformerConfig):
    """Options of both ReaRec models.  ``reasoning_temperature`` 0.07 is the official code's;
    ``reasoning_steps`` K = 2 the paper's default; the encoder follows this package's SASRec."""

    reasoning_steps: int = option(2, "ReaRec: reasoning steps K", ge=1)
    reasoning_temperature: float = option(0.07, "ReaRec: logit temperature", ge=MIN_TEMPERATURE)


@dataclass(frozen=True)
class ReaRecERLConfig(ReaRecConfig):
    """ReaRec-ERL's options: the KL diversity weight 0.05 is the official code's default."""

    kl_weight: float = option(0.05, "ReaRec-ERL: weight of the KL diversity term", ge=0)


@dataclass(frozen=True)
class ReaRecPRLConfig(ReaRecConfig):
    """ReaRec-PRL's options: annealing base 5, noise 0.01 and contrastive weight 1 are the
    official code's defaults."""

    anneal_base: float = option(5.0, "ReaRec-PRL: temperature annealing base", ge=1)
    reasoning_noise: float = option(0.01, "ReaRec-PRL: noise scale of the contrastive view", ge=0)
    reasoning_cl_weight: float = option(1.0, "ReaRec-PRL: contrastive loss weight", ge=0)


class ReaRec(SequentialRecommender):
    """The reasoning encoder shared by ERL and PRL; subclasses add the loss and the readout."""

    example_kind = "prefix"
    Config = ReaRecConfig

    def __init__(self, num_items: int, config: Optional[ReaRecConfig] = None, **options):
        super().__init__(num_items, config, options)
        config = self.config
        self.reasoning_steps = config.reasoning_steps
        self.temperature = config.reasoning_temperature
        self.backend = config.backend
        d_model = config.d_model
        self.encoder = SASRecEncoder.from_config(num_items, config)
        self.reasoning_positions = nn.Embedding(config.reasoning_steps, d_model)
        self.reasoning_norm = nn.LayerNorm(d_model)
        self.reasoning_dropout = Dropout(config.dropout)
        # The official initialization.  It matters here: logits are divided by τ = 0.07, and
        # item vectors of SASRec's initial scale would start the softmax saturated (initial
        # cross-entropy ~14 instead of ln N), which slows training severalfold.
        self.apply(normal_init)
        with torch.no_grad():
            self.item_embeddings[0].zero_()

    @property
    def item_embeddings(self) -> torch.Tensor:
        return self.encoder.embedding.items.weight

    def reasoning_input(self, state: torch.Tensor, step: int, input_noise: float) -> torch.Tensor:
        """The token ``(B, d)`` fed back after ``state`` at reasoning step ``step`` (0-based)."""
        x = state + self.reasoning_positions.weight[step]
        if input_noise > 0:
            x = x + input_noise * torch.randn_like(x)
        return self.reasoning_dropout(self.reasoning_norm(x))

    def reasoning_states(self, history: torch.Tensor, input_noise: float = 0.0) -> torch.Tensor:
        """States ``(views, B, K + 1, d)``: ``h_0`` then one per reasoning step.

        With ``input_noise > 0`` there are two views: the clean one, and one whose reasoning
        inputs are the clean view's plus Gaussian noise of that scale (PRL's noisy view).
        """
        batch = history.shape[0]
        views = 2 if input_noise > 0 else 1
        history = history.repeat(views, 1)
        tokens = self.encoder.embedding(history)
        real = history > 0
        states = [self.encoder.transform(tokens, real)[:, -1]]
        for step in range(self.reasoning_steps):
            clean = states[-1][:batch]
            inputs = [self.reasoning_input(clean, step, 0.0)]
            if views == 2:
                inputs.append(self.reasoning_input(clean, step, input_noise))
            tokens = torch.cat([tokens, torch.cat(inputs)[:, None]], dim=1)
            real = torch.cat([real, real.new_ones(len(real), 1)], dim=1)
            states.append(self.encoder.transform(tokens, real)[:, -1])
        return torch.stack(states, dim=1).view(views, batch, self.reasoning_steps + 1, -1)

    def tempered(self, states: torch.Tensor) -> torch.Tensor:
        """States divided by ``τ``: their products with the item table are the tempered logits."""
        return states / self.temperature

    def user_vector(self, history: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> TableScores:
        return TableScores(self.user_vector(history), self.item_embeddings)


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """Weights of linear and embedding layers from N(0, std), biases zero (ReaRec's code)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class ReaRecERL(ReaRec):
    """Ensemble Reasoning Learning: every state is a view of the user; they are averaged.

    Options: :class:`ReaRecERLConfig`.

    Loss (paper): the cross-entropy of every state ``h_0..h_K`` (summed over states) minus
    ``kl_weight`` times the mean pairwise KL divergence between the states' predicted
    distributions, which keeps the states from collapsing onto one another.  As in the
    official code, one side of each pair is detached (``KL(p_j || sg(p_i))``): each
    distribution is pushed away from the others as they are, not pulled along with them.
    Prediction: the mean of the states (mean pooling).
    """

    Config = ReaRecERLConfig

    def __init__(self, num_items: int, config: Optional[ReaRecERLConfig] = None, **options):
        super().__init__(num_items, config, **options)
        self.kl_weight = self.config.kl_weight

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        states = self.reasoning_states(batch["history"])[0]
        steps = states.shape[1]
        # The sum over states of each state's mean loss: K + 1 times the mean over (row, state).
        targets = batch["target"].repeat_interleave(steps)
        ce = steps * self.catalog_loss(self.tempered(states).flatten(0, 1), self.item_embeddings, targets)
        if self.kl_weight == 0:
            return ce, {"loss": ce.detach(), "ce": ce.detach()}
        # Over the whole catalog's distributions whatever the catalog loss, streamed over items.
        diversity = catalog_pairwise_kl(self.tempered(states), self.item_embeddings[1:])
        loss = ce - self.kl_weight * diversity
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "kl": diversity.detach()}

    def user_vector(self, history: torch.Tensor) -> torch.Tensor:
        return self.reasoning_states(history)[0].mean(dim=1)


class ReaRecPRL(ReaRec):
    """Progressive Reasoning Learning: the last state predicts, earlier ones sharpen toward it.

    Options: :class:`ReaRecPRLConfig`.

    Loss (paper and official code):

    * the cross-entropy of the last state ``h_K`` at temperature ``τ``;
    * progressive temperature annealing: state ``h_k`` (``k < K``) is trained with temperature
      ``τ · anneal_base^(K − k)``, so early steps learn a soft distribution and each later
      step a sharper one (mean over those steps, weight 1);
    * reasoning-aware contrastive learning: a second view whose reasoning inputs get Gaussian
      noise of scale ``reasoning_noise``; at each reasoning step ``1..K`` an InfoNCE (dot
      product over ``τ``, noisy view → clean view, other users in the batch as negatives)
      ties the noisy state to its clean one, weighted by ``reasoning_cl_weight``.

    Prediction: the last state.
    """

    Config = ReaRecPRLConfig

    def __init__(self, num_items: int, config: Optional[ReaRecPRLConfig] = None, **options):
        super().__init__(num_items, config, **options)
        self.anneal_base = self.config.anneal_base
        self.reasoning_noise = self.config.reasoning_noise
        self.reasoning_cl_weight = self.config.reasoning_cl_weight
        self.contrastive = use_backend(InfoNCELoss(self.temperature, normalize=False, symmetric=False), self.backend)

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        contrast = self.reasoning_cl_weight > 0 and self.reasoning_noise > 0
        views = self.reasoning_states(batch["history"], self.reasoning_noise if contrast else 0.0)
        clean = views[0]
        targets = batch["target"]
        ce = self.catalog_loss(self.tempered(clean[:, -1]), self.item_embeddings, targets)
        progressive = self.progressive_loss(clean[:, :-1], targets)
        loss = ce + progressive
        parts = {"ce": ce.detach(), "progressive": progressive.detach()}
        if contrast:
            noisy = views[1]
            consistency = torch.stack(
                [self.contrastive(noisy[:, k], clean[:, k], group_ids=batch["user"]) for k in range(1, clean.shape[1])]
            ).mean()
            loss = loss + self.reasoning_cl_weight * consistency
            parts["infonce"] = consistency.detach()
        return loss, {"loss": loss.detach(), **parts}

    def progressive_loss(self, early_states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Catalog loss (default the cross-entropy) of ``h_0..h_{K-1}`` at temperatures
        ``τ·base^K, ..., τ·base``."""
        steps = early_states.shape[1]
        exponents = torch.arange(steps, 0, -1, device=early_states.device, dtype=early_states.dtype)
        annealing = self.anneal_base**exponents  # divides the logits beyond the base τ
        tempered = self.tempered(early_states) / annealing[None, :, None]
        return self.catalog_loss(tempered.flatten(0, 1), self.item_embeddings, targets.repeat_interleave(steps))

    def user_vector(self, history: torch.Tensor) -> torch.Tensor:
        return self.reasoning_states(history)[0][:, -1]
