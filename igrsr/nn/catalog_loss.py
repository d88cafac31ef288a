"""The catalog loss: how every model here scores its user vectors against its item table in training.

A model calls one :class:`CatalogLoss` with its user vectors ``(R, d)``, its item table
``(N + 1, d)`` (row 0 is padding and never a class), its targets (item ids ``1..N``) and,
where it has one, a per-item output bias.  ``loss`` picks the loss:

* ``"ce"``: the full-softmax cross-entropy through the fused :func:`igrsr.ops.linear_cross_entropy`,
  which never holds the ``R × N`` logits (memory O(rows · chunk));
* ``"sampled-softmax"``: a softmax over the positive and ``K`` negatives shared by the batch,
  drawn uniformly or in proportion to training popularity, with the log-Q correction
  (:func:`sampled_softmax_loss`);
* ``"gbce"``: gSASRec's generalized binary cross-entropy over ``K`` uniform negatives per
  positive, calibrated by ``t`` (:func:`gbce_loss`);
* ``"bce"``: the original SASRec loss, binary cross-entropy against one uniform negative per
  positive (``gbce`` with ``K = 1`` and ``t = 0``).
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..ops import backend_for, linear_cross_entropy

LOSSES = ("ce", "sampled-softmax", "gbce", "bce")
SAMPLERS = ("uniform", "popularity")


def fold_bias(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``hidden @ weight.T + bias`` as one product: a column of ones appended to ``hidden`` and
    the bias appended to ``weight`` as a column, so any loss over a product takes a bias too."""
    ones = hidden.new_ones(*hidden.shape[:-1], 1)
    return torch.cat([hidden, ones], dim=-1), torch.cat([weight, bias[:, None].to(weight.dtype)], dim=-1)


def sampled_softmax_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    classes: torch.Tensor,
    negatives: torch.Tensor,
    log_expected_counts: torch.Tensor,
) -> torch.Tensor:
    """Mean cross-entropy of a softmax over each row's positive and ``K`` shared negatives.

    ``hidden`` (R, d), ``weight`` (N, d), ``classes`` (R,) the positives' rows of ``weight``,
    ``negatives`` (K,) rows drawn with replacement from a proposal ``q``, and
    ``log_expected_counts`` (K,) ``log(K · q(negative))``.  The log-Q correction subtracts
    ``log(K · q)`` from each sampled logit (Bengio & Senécal 2008; Jean et al. 2015), so that
    ``Σ_k exp(s_k) / (K q_k)`` estimates the positive-free part of the full partition function
    without bias whatever the proposal; the positive keeps its plain logit.  A negative equal to
    a row's positive (an accidental hit) is masked out of that row: the positive is never its
    own negative.  Drawing every item once with ``log(K q) = 0`` gives the full softmax exactly.
    Memory O(R · K): the sampled logits are materialized, which is why K stays small.
    """
    positive = (hidden * weight[classes]).sum(dim=-1, keepdim=True)
    sampled = hidden @ weight[negatives].T - log_expected_counts.to(hidden.dtype)
    sampled = sampled.masked_fill(negatives[None, :] == classes[:, None], float("-inf"))
    logits = torch.cat([positive, sampled], dim=1).float()
    return F.cross_entropy(logits, torch.zeros_like(classes))


def gbce_beta(num_negatives: int, num_items: int, calibration: float) -> float:
    """gSASRec's exponent ``β = α (t (1 − 1/α) + 1/α)`` with the sampling rate ``α = K / (N − 1)``."""
    alpha = num_negatives / (num_items - 1)
    return alpha * (calibration * (1 - 1 / alpha) + 1 / alpha)


def gbce_loss(
    hidden: torch.Tensor, weight: torch.Tensor, classes: torch.Tensor, negatives: torch.Tensor, beta: float
) -> torch.Tensor:
    """gSASRec's generalized binary cross-entropy (Petrov & Macdonald, "gSASRec: Reducing
    Overconfidence in Sequential Recommendation Trained with Negative Sampling", RecSys 2023).

    ``negatives`` (R, K): each row's own negatives (rows of ``weight``).  gBCE replaces the
    positive's probability ``σ(s⁺)`` by ``σ(s⁺)^β`` (:func:`gbce_beta`), which counters the
    overconfidence sampling teaches; the paper writes it as the BCE of a transformed logit
    ``log(1 / (σ(s⁺)^(−β) − 1))``, whose positive term ``−log σ(s⁺)^β`` is ``β · softplus(−s⁺)``,
    computed here in that stable form.  Per positive, as in the authors' code, the mean over its
    ``1 + K`` terms ``β · softplus(−s⁺) + Σ_k softplus(s⁻_k)``; then the mean over positives.
    ``β = 1`` (``t = 0``) is plain BCE.  A negative equal to its row's positive is masked out.
    Memory O(R · K · d): each row gathers its own negatives' vectors.
    """
    positive = (hidden * weight[classes]).sum(dim=-1)
    sampled = torch.einsum("rd,rkd->rk", hidden, weight[negatives])
    negative_terms = F.softplus(sampled.float()).masked_fill(negatives == classes[:, None], 0.0)
    per_positive = beta * F.softplus(-positive.float()) + negative_terms.sum(dim=-1)
    return (per_positive / (1 + negatives.shape[1])).mean()


class NegativeSampler(nn.Module):
    """Negatives among ``num_items`` classes: uniform, or in proportion to training counts.

    Popularity needs the counts of the items in the training data: :meth:`set_item_counts`
    (:func:`igrsr.models.registry.build_model` passes them when given; the trainer's runs do).
    They are a buffer outside the state dict: a property of the data, not of the weights.
    """

    def __init__(self, num_items: int, kind: str = "uniform"):
        super().__init__()
        check_sampler("sampled-softmax", kind)
        self.num_items = num_items
        self.kind = kind
        self.register_buffer("probabilities", None, persistent=False)

    def set_item_counts(self, counts: torch.Tensor) -> None:
        """``counts`` (N + 1,): how often each item id occurs in the training data (id 0 ignored)."""
        counts = torch.as_tensor(counts, dtype=torch.float64)
        if counts.shape != (self.num_items + 1,):
            raise ValueError(f"item counts must have shape ({self.num_items + 1},), got {tuple(counts.shape)}")
        if (counts[1:] < 0).any() or counts[1:].sum() <= 0:
            raise ValueError("item counts must be >= 0 with at least one item counted")
        device = None if self.probabilities is None else self.probabilities.device
        self.probabilities = (counts[1:] / counts[1:].sum()).to(device=device, dtype=torch.float32)

    def sample(self, shape: Tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Classes ``0..N-1`` of the given shape, drawn with replacement."""
        if self.kind == "uniform":
            return torch.randint(self.num_items, shape, device=device)
        if self.probabilities is None:
            raise ValueError(
                "sampler='popularity' needs the training items' counts: build the model with "
                "igrsr.models.build_model(..., item_counts=...) or call model.set_item_counts(counts)"
            )
        drawn = torch.multinomial(self.probabilities, math.prod(shape), replacement=True)
        return drawn.view(shape).to(device)

    def log_probability(self, classes: torch.Tensor) -> torch.Tensor:
        """``log q`` of each class."""
        if self.kind == "uniform":
            return torch.full(classes.shape, -math.log(self.num_items), device=classes.device)
        return self.probabilities.log()[classes.to(self.probabilities.device)].to(classes.device)


class CatalogLoss(nn.Module):
    """A model's training loss over its catalog of ``num_items`` items (see the module's docstring).

    ``num_negatives`` is ``K`` of ``sampled-softmax`` and ``gbce``; ``sampler`` how
    ``sampled-softmax`` draws them; ``gbce_t`` the calibration of ``gbce``; ``backend`` the
    kernels of the fused cross-entropy (:func:`igrsr.ops.backend_for`).
    """

    OP = "linear_cross_entropy"

    def __init__(
        self,
        num_items: int,
        loss: str = "ce",
        num_negatives: int = 256,
        sampler: str = "uniform",
        gbce_t: float = 0.75,
        backend: str = "auto",
    ):
        super().__init__()
        check_loss_options(num_items, loss, num_negatives, sampler, gbce_t)
        self.num_items = num_items
        self.loss = loss
        self.num_negatives = 1 if loss == "bce" else num_negatives
        self.beta = gbce_beta(num_negatives, num_items, gbce_t) if loss == "gbce" else 1.0
        self.sampler = NegativeSampler(num_items, sampler)
        self.backend = backend_for(self.OP, backend)

    @classmethod
    def from_config(cls, num_items: int, config) -> "CatalogLoss":
        """The loss a model config (a :class:`igrsr.models.base.CatalogLossConfig`) describes."""
        backend = getattr(config, "backend", "auto")
        return cls(num_items, config.loss, config.num_negatives, config.sampler, config.gbce_t, backend)

    def forward(
        self, hidden: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor, bias: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Mean loss of user vectors ``hidden`` (R, d) against ``item_table`` (N + 1, d) for
        target ids ``targets`` (R,) in ``1..N``; ``bias`` (N + 1,) adds to every item's score."""
        weight, classes = item_table[1:], targets - 1
        if bias is not None:
            hidden, weight = fold_bias(hidden, weight, bias[1:])
        if self.loss == "ce":
            return linear_cross_entropy(hidden, weight, classes, backend=self.backend)
        if self.loss == "sampled-softmax":
            negatives = self.sampler.sample((self.num_negatives,), hidden.device)
            log_expected_counts = math.log(self.num_negatives) + self.sampler.log_probability(negatives)
            return sampled_softmax_loss(hidden, weight, classes, negatives, log_expected_counts)
        negatives = self.sampler.sample((len(classes), self.num_negatives), hidden.device)
        return gbce_loss(hidden, weight, classes, negatives, self.beta)


def check_loss_options(num_items: int, loss: str, num_negatives: int, sampler: str, gbce_t: float) -> None:
    """The checks that need the catalog's size; each error names its option."""
    if loss not in LOSSES:
        raise ConfigError("loss", f"must be one of {', '.join(LOSSES)}; got {loss!r}")
    if num_negatives < 1:
        raise ConfigError("num_negatives", f"must be >= 1, got {num_negatives}")
    if not 0 <= gbce_t <= 1:
        raise ConfigError("gbce_t", f"must be in [0, 1], got {gbce_t}")
    check_sampler(loss, sampler)
    if loss == "gbce" and not 1 <= num_negatives <= num_items - 1:
        raise ConfigError(
            "num_negatives", f"must be in [1, {num_items - 1}] for gbce over {num_items} items, got {num_negatives}"
        )


def check_sampler(loss: str, sampler: str) -> None:
    """Popularity sampling only where its log-Q correction applies (``sampled-softmax``)."""
    if sampler not in SAMPLERS:
        raise ConfigError("sampler", f"must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if loss in ("gbce", "bce") and sampler != "uniform":
        raise ConfigError("sampler", f"must be uniform with loss={loss}: gBCE's calibration assumes uniform negatives")


def catalog_pairwise_kl(states: torch.Tensor, weight: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Mean over rows and ordered pairs ``j != i`` of ``KL(p_j || sg(p_i))``, where ``p_j`` is the
    softmax over the catalog of the logits ``states[:, j] @ weight.T``; ``states`` (B, S, d), S >= 2.

    ReaRec-ERL's diversity term, without the ``B × S × N`` logits: with ``ē_j = Σ_n p_j(n) w_n``
    (the item vector expected under ``p_j``), ``KL(p_j || p_i) = (u_j − u_i)·ē_j − lse_j + lse_i``,
    and summed over the pairs the log-sum-exps cancel: the mean is
    ``Σ_j (u_j − ū)·ē_j / (B (S − 1))``.  The forward streams over item chunks for ``ē`` and
    ``lse`` with an online softmax; the backward recomputes each chunk.  Its gradient is that of
    the materialized form with the second distribution detached (the official code's choice):
    ``∂/∂s_j(n) = p_j(n) S [(s_j − s̄)(n) − E_{p_j}(s_j − s̄)] / (B S (S − 1))``, nothing for ``i``.
    """
    if states.dim() != 3 or states.shape[1] < 2:
        raise ValueError(f"states must be (B, S, d) with S >= 2, got shape {tuple(states.shape)}")
    return _CatalogPairwiseKL.apply(states, weight, chunk_size)


def _softmax_statistics(states: torch.Tensor, weight: torch.Tensor, chunk_size: int):
    """``lse`` (B, S) and ``ē`` (B, S, d) of each state's catalog softmax, one item chunk at a time."""
    running_max = states.new_full(states.shape[:-1], float("-inf"))
    total = states.new_zeros(states.shape[:-1])
    weighted = torch.zeros_like(states)
    for start in range(0, len(weight), chunk_size):
        chunk = weight[start : start + chunk_size]
        logits = states @ chunk.T
        new_max = torch.maximum(running_max, logits.amax(dim=-1))
        rescale = torch.exp(running_max - new_max)
        exponentials = torch.exp(logits - new_max[..., None])
        total = total * rescale + exponentials.sum(dim=-1)
        weighted = weighted * rescale[..., None] + exponentials @ chunk
        running_max = new_max
    return running_max + total.log(), weighted / total[..., None]


class _CatalogPairwiseKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, states, weight, chunk_size):
        lse, expected = _softmax_statistics(states, weight, chunk_size)
        ctx.save_for_backward(states, weight, lse, expected)
        ctx.chunk_size = chunk_size
        centred = states - states.mean(dim=1, keepdim=True)
        batch, steps = states.shape[:2]
        return (centred * expected).sum() / (batch * (steps - 1))

    @staticmethod
    def backward(ctx, grad_output):
        states, weight, lse, expected = ctx.saved_tensors
        batch, steps = states.shape[:2]
        centred = states - states.mean(dim=1, keepdim=True)
        offset = (centred * expected).sum(dim=-1, keepdim=True)  # E_{p_j}[s_j − s̄]
        scale = grad_output / (batch * (steps - 1))
        grad_states, grad_weight = torch.zeros_like(states), torch.zeros_like(weight)
        for start in range(0, len(weight), ctx.chunk_size):
            chunk = weight[start : start + ctx.chunk_size]
            probabilities = torch.exp(states @ chunk.T - lse[..., None])
            grad_logits = scale * probabilities * (centred @ chunk.T - offset)
            grad_states += grad_logits @ chunk
            grad_weight[start : start + ctx.chunk_size] = torch.einsum("bsc,bsd->cd", grad_logits, states)
        return grad_states, grad_weight, None
