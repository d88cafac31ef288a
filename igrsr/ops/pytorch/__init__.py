"""Plain PyTorch references: obviously correct, free to materialize anything.

Every fast path in igrsr is tested against these, forward and backward.
"""

from .causal_attention import causal_attention_reference
from .cross_attention import intent_cross_attention_reference
from .info_nce import info_nce_reference

__all__ = ["causal_attention_reference", "intent_cross_attention_reference", "info_nce_reference"]
