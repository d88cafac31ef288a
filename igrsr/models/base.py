"""What the trainer and the evaluator ask of a sequential recommender."""

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, ConfigError, option
from ..nn import check_backend

# Which training examples a model learns from (see igrsr.data):
#   "sequence": one example per user sequence, a loss at every position (SASRec-style);
#   "prefix":   one example per (history prefix -> next item), a loss at the last position.
EXAMPLE_KINDS = ("sequence", "prefix")

C = TypeVar("C", bound=Config)


@dataclass(frozen=True)
class TransformerConfig(Config):
    """Options of the models built on the SASRec encoder (item table, learned positions, causal
    transformer blocks).  Each model's own config restates the defaults that differ and says
    where they come from."""

    max_len: int = option(50, "history length fed to the model", ge=1)
    d_model: int = option(64, "hidden size d", ge=1)
    num_layers: int = option(2, "transformer layers", ge=1)
    num_heads: int = option(2, "attention heads (d must be a multiple)", ge=1)
    dropout: float = option(0.5, "dropout probability", ge=0, lt=1)
    backend: str = option(
        "auto", "kernel backend: auto, reference, or one op's (triton for attention; cuda, cpu for InfoNCE)"
    )

    def check(self) -> None:
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
    published defaults), and implement :meth:`training_loss` and :meth:`score`.  Item ids run
    from 1 to ``num_items``; 0 is padding and is never recommended.
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

    def training_loss(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The loss to minimize on one batch, and its named parts for logging.

        A batch (``igrsr.data.examples``) holds ``history`` (B, L) left-padded item ids, ``user``
        (B,) user indices, and ``targets`` (B, L) aligned next items (0 where padded) for a
        ``"sequence"`` model or ``target`` (B,) the next item for a ``"prefix"`` model.
        """
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
