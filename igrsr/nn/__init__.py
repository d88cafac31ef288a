"""Layers: drop-in modules over :mod:`igrsr.ops`."""

from .attention import MAX_INTENTS, CausalSelfAttention, IntentCrossAttention
from .backends import check_backend, use_backend
from .catalog_loss import CatalogLoss
from .convert import fused_qkv_state_dict, recbole_transformer_layer_state_dict
from .dropout import Dropout
from .losses import InfoNCELoss
from .transformer import CausalTransformerLayer, DeliberativeReasonerLayer, FeedForward

__all__ = [
    "MAX_INTENTS",
    "CatalogLoss",
    "CausalSelfAttention",
    "CausalTransformerLayer",
    "check_backend",
    "DeliberativeReasonerLayer",
    "Dropout",
    "FeedForward",
    "fused_qkv_state_dict",
    "InfoNCELoss",
    "IntentCrossAttention",
    "recbole_transformer_layer_state_dict",
    "use_backend",
]
