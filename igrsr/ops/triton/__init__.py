"""Triton backend of the attention ops.

``torch.library`` custom ops (with fake implementations and autograd, so ``torch.compile``
traces them without graph breaks) over the kernels in :mod:`igrsr.kernels.triton`,
registered as backend ``"triton"`` of the ``intent_cross_attention`` and
``causal_attention`` dispatchers.  Importing this package does not need Triton: the kernels
are imported on the first call, and the dispatchers report Triton as unavailable without it.
"""

from . import causal_attention, cross_attention

__all__ = ["causal_attention", "cross_attention"]
