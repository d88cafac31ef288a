"""Model names known to the trainer and the command line, and how to build each."""

import inspect
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .base import SequentialRecommender
from .igrsr import IGRSR
from .sasrec import SASRec


@dataclass(frozen=True)
class ModelEntry:
    """A model class and how it is constructed.

    ``needs_backbone``: the model is a stage 2 over a trained SASRec, which the trainer trains
    (or reuses) first with the SASRec options of the same run; it is built as
    ``cls(backbone, **options)``.  Other models are built as ``cls(num_items, **options)``,
    with ``num_users=`` added when the constructor takes it.
    """

    cls: type
    needs_backbone: bool = False


MODELS: Dict[str, ModelEntry] = {
    "sasrec": ModelEntry(SASRec),
    "igrsr": ModelEntry(IGRSR, needs_backbone=True),
}


def options_for(cls: type, options: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of ``options`` that ``cls.__init__`` accepts (its own hyperparameters)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {name: value for name, value in options.items() if name in accepted and value is not None}


def build_model(
    name: str,
    num_items: int,
    num_users: int,
    options: Dict[str, Any],
    backbone: Optional[SASRec] = None,
) -> SequentialRecommender:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    entry = MODELS[name]
    kwargs = options_for(entry.cls, options)
    kwargs.pop("num_users", None)
    if "num_users" in inspect.signature(entry.cls.__init__).parameters:
        kwargs["num_users"] = num_users
    if entry.needs_backbone:
        if backbone is None:
            raise ValueError(f"model {name!r} needs a trained SASRec backbone")
        return entry.cls(backbone, **kwargs)
    return entry.cls(num_items, **kwargs)
