"""Layers: drop-in modules over :mod:`igrsr.ops`."""

from .attention import MAX_INTENTS, CausalSelfAttention, IntentCrossAttention
from .backends import check_backend, use_backend
from .dropout import Dropout
from .losses import MIN_TEMPERATURE, InfoNCELoss
from .transformer import CausalTransformerLayer, DeliberativeReasonerLayer, FeedForward

__all__ = [
    "MAX_INTENTS",
    "MIN_TEMPERATURE",
    "CausalSelfAttention",
    "CausalTransformerLayer",
    "check_backend",
    "DeliberativeReasonerLayer",
    "Dropout",
    "FeedForward",
    "InfoNCELoss",
    "IntentCrossAttention",
    "use_backend",
]
