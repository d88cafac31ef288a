"""Training: the settings, the epoch loop, checkpoints and reusable runs."""

from ..data import load_data
from .config import SYNTHETIC_TRAINING, Stage2Config, TrainConfig
from .runs import RunSpec, make_spec, train_model
from .trainer import Trainer, evaluate_model

__all__ = [
    "SYNTHETIC_TRAINING",
    "RunSpec",
    "Stage2Config",
    "TrainConfig",
    "Trainer",
    "evaluate_model",
    "load_data",
    "make_spec",
    "train_model",
]
