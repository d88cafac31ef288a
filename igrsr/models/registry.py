"""Model names known to the trainer and the command line, and how to build each."""

import inspect
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set

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
    """A model class and how it is constructed.

    ``needs_backbone``: the model is a stage 2 over a trained SASRec, which the trainer trains
    (or reuses) first with the SASRec options of the same run; it is built as
    ``cls(backbone, **options)``.  Other models are built as ``cls(num_items, **options)``,
    with ``num_users=`` added when the constructor takes it.  ``stage2_settings``: the model
    trains with the stage-2 settings (``--stage2-lr``, ``--stage2-epochs``) instead of the
    common ones: IGR-SR, whose reasoner starts as its SASRec; not LightRec, whose codebooks
    are new parameters.  ``learned``: training fits parameters (False for popularity, which
    counts in one pass and has no learning rate).  ``revision``: raised whenever what the
    model computes changes, so that runs of an older revision are not reused
    (``igrsr.train.runs.run_key``).
    """

    cls: type
    needs_backbone: bool = False
    stage2_settings: bool = False
    learned: bool = True
    revision: int = 1


# The model a stage-2 model (``needs_backbone``) is trained over.
BACKBONE = "sasrec"


MODELS: Dict[str, ModelEntry] = {
    "sasrec": ModelEntry(SASRec),
    "igrsr": ModelEntry(IGRSR, needs_backbone=True, stage2_settings=True),
    "pop": ModelEntry(Popularity, learned=False),
    "bert4rec": ModelEntry(BERT4Rec),
    "ssept": ModelEntry(SSEPT),
    "rearec-erl": ModelEntry(ReaRecERL),
    "rearec-prl": ModelEntry(ReaRecPRL),
    # 2: residual codebook encoding; 3: a stage 2 over a trained SASRec (frozen keys)
    "lightrec": ModelEntry(LightRec, needs_backbone=True, revision=3),
}


def constructor_parameters(cls: type) -> Set[str]:
    """Names ``cls(...)`` accepts, following ``**options`` passed on to base classes."""
    names: Set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names - {"self"}


def options_for(cls: type, options: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of ``options`` that ``cls`` accepts (its own hyperparameters)."""
    accepted = constructor_parameters(cls)
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
    if "num_users" in constructor_parameters(entry.cls):
        kwargs["num_users"] = num_users
    if entry.needs_backbone:
        if backbone is None:
            raise ValueError(f"model {name!r} needs a trained SASRec backbone")
        return entry.cls(backbone, **kwargs)
    return entry.cls(num_items, **kwargs)
