"""Layers: drop-in modules over :mod:`igrsr.ops`."""

from .attention import CausalSelfAttention, IntentCrossAttention
from .backends import use_backend
from .dropout import Dropout
from .losses import InfoNCELoss
from .transformer import CausalTransformerLayer, DeliberativeReasonerLayer, FeedForward

__all__ = [
    "CausalSelfAttention",
    "CausalTransformerLayer",
    "DeliberativeReasonerLayer",
    "Dropout",
    "FeedForward",
    "InfoNCELoss",
    "IntentCrossAttention",
    "use_backend",
]
