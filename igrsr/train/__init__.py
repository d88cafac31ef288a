"""Training: the epoch loop, checkpoints and reusable runs."""

from .runs import load_data, train_model
from .trainer import TrainConfig, Trainer, evaluate_model

__all__ = ["TrainConfig", "Trainer", "evaluate_model", "load_data", "train_model"]
