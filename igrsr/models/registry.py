"""The models the trainer and the command line know: one entry per model, in one place.

Adding a model is its file (the model class with its ``Config``) and one line here.
"""

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Type

import numpy as np
import torch

from ..config import Config
from .base import SequentialRecommender
from .bert4rec import BERT4Rec
from .igrsr import IGRSR
from .lightrec import LightRec
from .pop import Popularity
from .rearec import ReaRecERL, ReaRecPRL
from .sasrec import SASRec
from .ssept import SSEPT


@dataclass(frozen=True)
class ModelEntry:
    """A model class and how the trainer builds and trains it.

    ``needs_backbone``: the model is a stage 2 over a trained SASRec, which the trainer trains
    (or reuses) first; it is built as ``cls(backbone, config)``, other models as
    ``cls(num_items, config)`` (``cls(num_items, num_users, config)`` when ``personalized``).
    ``stage2_settings``: it trains with the stage-2 settings (``--stage2-lr``,
    ``--stage2-epochs``): IGR-SR, whose reasoner starts as its SASRec; not LightRec, whose
    codebooks are new parameters.  ``learned``: training fits parameters (False for popularity,
    which counts in one pass).  ``revision``: raised whenever what the model computes changes,
    so that runs of an older revision are not reused (it is part of the run key).
    """

    cls: Type[SequentialRecommender]
    needs_backbone: bool = False
    stage2_settings: bool = False
    learned: bool = True
    personalized: bool = False
    revision: int = 1

    @property
    def config(self) -> Type[Config]:
        return self.cls.Config


# The model a stage-2 model (``needs_backbone``) is trained over.
BACKBONE = "sasrec"

MODELS: Dict[str, ModelEntry] = {
    "sasrec": ModelEntry(SASRec),
    "igrsr": ModelEntry(IGRSR, needs_backbone=True, stage2_settings=True),
    "pop": ModelEntry(Popularity, learned=False),
    "bert4rec": ModelEntry(BERT4Rec),
    "ssept": ModelEntry(SSEPT, personalized=True),
    "rearec-erl": ModelEntry(ReaRecERL),
    "rearec-prl": ModelEntry(ReaRecPRL),
    # 2: residual codebook encoding; 3: a stage 2 over a trained SASRec (frozen keys)
    "lightrec": ModelEntry(LightRec, needs_backbone=True, revision=3),
}


def model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_config(name: str, options: Mapping[str, Any]) -> Config:
    """``name``'s config: its published defaults, replaced by those ``options`` it has (the
    others belong to other models)."""
    cls = model_entry(name).config
    fields = cls.__dataclass_fields__
    return cls.from_dict({key: value for key, value in options.items() if key in fields})


def build_model(
    name: str,
    num_items: int,
    num_users: int,
    config: Config,
    backbone: Optional[SASRec] = None,
    item_counts: Optional[np.ndarray] = None,
) -> SequentialRecommender:
    """The untrained model ``name`` with ``config`` for a catalog of ``num_items`` items.

    ``item_counts`` (``Split.item_counts()``): the training data's item counts, which
    popularity-sampled negatives (``sampler="popularity"``) are drawn from.
    """
    entry = model_entry(name)
    if entry.needs_backbone:
        if backbone is None:
            raise ValueError(f"model {name!r} needs a trained SASRec backbone")
        model = entry.cls(backbone, config)
    elif entry.personalized:
        model = entry.cls(num_items, num_users, config)
    else:
        model = entry.cls(num_items, config)
    if item_counts is not None:
        model.set_item_counts(torch.as_tensor(item_counts))
    return model
