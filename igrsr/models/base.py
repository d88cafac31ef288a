"""What the trainer and the evaluator ask of a sequential recommender."""

from dataclasses import dataclass
from typing import Any, Dict, Literal, Mapping, Optional, Tuple, Type, TypeVar, Union

import torch
from torch import nn

from ..config import Config, ConfigError, option
from ..eval.scores import ItemScores, MaterializedScores
from ..eval.streaming import top_k
from ..nn import check_backend
from ..nn.catalog_loss import CatalogLoss, NegativeSampler, check_sampler

# Which training examples a model learns from (see igrsr.data):
#   "sequence": one example per user sequence, a loss at every position (SASRec-style);
#   "prefix":   one example per (history prefix -> next item), a loss at the last position.
EXAMPLE_KINDS = ("sequence", "prefix")

C = TypeVar("C", bound=Config)


@dataclass(frozen=True)
class CatalogLossConfig(Config):
    """The training loss over the catalog (:class:`igrsr.nn.catalog_loss.CatalogLoss`).  The
    default is the full-softmax cross-entropy every model here was published or reproduced with;
    the sampled losses are for catalogs where even the fused full softmax costs too much."""

    loss: Literal["ce", "sampled-softmax", "gbce", "bce"] = option(
        "ce",
        "catalog loss: full-softmax cross-entropy, sampled softmax (log-Q corrected), gSASRec's gBCE, "
        "or BCE with one negative (the original SASRec's)",
    )
    num_negatives: int = option(256, "negatives K: shared by the batch (sampled-softmax), per positive (gbce)", ge=1)
    sampler: Literal["uniform", "popularity"] = option(
        "uniform", "how sampled-softmax draws its negatives: uniformly or by training popularity"
    )
    gbce_t: float = option(0.75, "gbce calibration t (gSASRec; 0 is plain BCE)", ge=0, le=1)

    def check(self) -> None:
        check_sampler(self.loss, self.sampler)


@dataclass(frozen=True)
class TransformerConfig(CatalogLossConfig):
    """Options of the models built on the SASRec encoder (item table, learned positions, causal
    transformer blocks) and their catalog loss.  Each model's own config restates the defaults
    that differ and says where they come from."""

    max_len: int = option(50, "history length fed to the model", ge=1)
    d_model: int = option(64, "hidden size d", ge=1)
    num_layers: int = option(2, "transformer layers", ge=1)
    num_heads: int = option(2, "attention heads (d must be a multiple)", ge=1)
    dropout: float = option(0.5, "dropout probability", ge=0, lt=1)
    backend: str = option(
        "auto", "kernel backend: auto, reference, or one op's (triton for attention; cuda, cpu for InfoNCE)"
    )

    def check(self) -> None:
        super().check()
        check_heads(self.d_model, self.num_heads)
        check_backend_option(self.backend)


def check_heads(d_model: int, num_heads: int, option_name: str = "num_heads") -> None:
    if d_model % num_heads:
        raise ConfigError(option_name, f"must divide d_model={d_model}, got {num_heads}")


def check_backend_option(backend: str) -> None:
    try:
        check_backend(backend)
    except ValueError as error:
        raise ConfigError("backend", str(error).removeprefix("backend ")) from None


def resolve_config(cls: Type[C], config: Optional[C], options: Mapping[str, Any]) -> C:
    """``config`` (default: ``cls()``) with ``options`` replacing its fields; how every model's
    constructor takes ``Model(..., config)`` and ``Model(..., dropout=0.3)`` alike."""
    base = cls() if config is None else config
    if not isinstance(base, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(base).__name__}")
    return cls.from_dict({**base.to_dict(), **options}) if options else base


class SequentialRecommender(nn.Module):
    """Base class: a model maps a left-padded history to scores over the whole catalog.

    Subclasses set ``example_kind`` and ``Config`` (their options, a frozen dataclass with the
    published defaults), and implement :meth:`training_loss` and :meth:`item_scores` (or, a
    model that cannot score part of the catalog alone, :meth:`score`).  Item ids run from 1 to
    ``num_items``; 0 is padding and is never recommended.  A model whose config is a
    :class:`CatalogLossConfig` gets ``self.catalog_loss``, the one loss every model's scores over
    the catalog train with.
    """

    example_kind = "sequence"
    Config: Type[Config] = Config

    def __init__(
        self, num_items: int, config: Optional[Config], options: Mapping[str, Any], max_len: Optional[int] = None
    ):
        """``self.config``: ``config`` (default: the published one) with ``options`` replacing its
        fields, so ``Model(n, config)`` and ``Model(n, dropout=0.2)`` both work; ``max_len``: the
        config's, unless given (a stage 2 takes its backbone's)."""
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        self.config = resolve_config(type(self).Config, config, options)
        self.num_items = num_items
        self.max_len = self.config.max_len if max_len is None else max_len
        if isinstance(self.config, CatalogLossConfig):
            self.catalog_loss = CatalogLoss.from_config(num_items, self.config)

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The loss to minimize on one batch, and its named parts for logging.

        A batch (``igrsr.data.examples``) holds ``history`` (B, L) left-padded item ids, ``user``
        (B,) user indices, and ``targets`` (B, L) aligned next items (0 where padded) for a
        ``"sequence"`` model or ``target`` (B,) the next item for a ``"prefix"`` model.
        """
        raise NotImplementedError

    def item_scores(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> ItemScores:
        """What scores any chunk of the catalog after ``history`` (B, L), without scoring it yet.

        Models with an inner-product output layer return :class:`~igrsr.eval.scores.TableScores`
        (user vectors, item table, optional bias), so ranking and recommendation stream over item
        chunks.  The default wraps :meth:`score`'s whole matrix: right for any model, but it holds
        ``B × num_items`` scores (override one of the two).
        """
        if type(self).score is SequentialRecommender.score:
            raise NotImplementedError(f"{type(self).__name__} implements neither item_scores() nor score()")
        return MaterializedScores(self.score(history, users))

    def score(self, history: torch.Tensor, users: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores ``(B, num_items + 1)`` of every item after ``history`` (B, L); padding is -inf."""
        if type(self).item_scores is SequentialRecommender.item_scores:
            raise NotImplementedError(f"{type(self).__name__} implements neither item_scores() nor score()")
        return self.mask_padding_column(self.item_scores(history, users).chunk(0, self.num_items + 1))

    def recommend(
        self,
        history: torch.Tensor,
        k: int,
        exclude: Union[str, torch.Tensor, None] = "history",
        users: Optional[torch.Tensor] = None,
        chunk_size: Optional[int] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best items after each history and their scores, ``(B, k)`` int64 and float32.

        ``exclude``: ``"history"`` (default) leaves out the items of ``history``; a ``(B, L)``
        tensor of item ids (0 ignored) leaves out those, e.g. a user's full history when the
        model sees only its last ``max_len`` items; ``None`` only padding.  Streamed over chunks
        of ``chunk_size`` items with ties in increasing item id (:func:`igrsr.eval.top_k`); a
        row with fewer than ``k`` candidates ends in item 0, score ``-inf``.  Runs in eval mode
        without gradients; the mode is restored after.
        """
        if isinstance(exclude, str) and exclude != "history":
            raise ValueError(f'exclude must be "history", None or a tensor of item ids, got {exclude!r}')
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                scores = self.item_scores(history, users)
                return top_k(scores, k, history if isinstance(exclude, str) else exclude, chunk_size)
        finally:
            self.train(was_training)

    def facts(self) -> Dict[str, Any]:
        """What a run's results record about the trained model besides its metrics (default none)."""
        return {}

    def set_item_counts(self, counts: torch.Tensor) -> None:
        """How often each item id occurs in the training data, ``(num_items + 1,)``: what
        popularity-sampled negatives are drawn from (see :class:`NegativeSampler`)."""
        for module in self.modules():
            if isinstance(module, NegativeSampler):
                module.set_item_counts(counts)

    @staticmethod
    def mask_padding_column(logits: torch.Tensor) -> torch.Tensor:
        """Padding (column 0) is never a valid prediction."""
        return torch.cat([torch.full_like(logits[:, :1], float("-inf")), logits[:, 1:]], dim=1)
