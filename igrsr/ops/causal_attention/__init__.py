"""``causal_attention``: causal self-attention with key padding and prefix keys.

The op's boundary: input validation, the dispatcher and the public function.  Its backends:
``reference`` (:mod:`.reference`) and ``triton`` (:mod:`.triton`, kernels in :mod:`.triton_kernels`).
"""

from typing import Optional

import torch

from ..attention_dropout import resolve_dropout
from ..dispatch import OpDispatcher
from ..validation import check_head_dim, check_mask, check_same, check_shape, check_tensor, resolve_scale
from .reference import causal_attention_reference

dispatcher = OpDispatcher("causal_attention")
dispatcher.register("reference", causal_attention_reference, preference=100)


def validate_causal_attention(q, k, v, key_padding_mask, num_prefix) -> None:
    check_tensor("q", q, 4)
    check_tensor("k", k, 4)
    check_tensor("v", v, 4)
    check_head_dim("q", q)
    check_shape("k", k, q.shape)
    check_shape("v", v, q.shape)
    check_same("q", q, k=k, v=v)
    batch, _, length, _ = q.shape
    check_mask("key_padding_mask", key_padding_mask, (batch, length), q.device)
    if isinstance(num_prefix, bool) or not isinstance(num_prefix, int):
        raise TypeError(f"num_prefix must be an int, got {type(num_prefix).__name__}")
    if not 0 <= num_prefix <= length:
        raise ValueError(f"num_prefix must be in [0, L={length}], got {num_prefix}")


def causal_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor] = None,
    *,
    num_prefix: int = 0,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
    dropout_seed: Optional[int] = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal self-attention.

    Position ``i`` attends to real keys ``j <= i`` plus the first ``num_prefix`` positions
    (always visible, e.g. learnable prefix tokens).

    Args:
        q, k, v: ``(B, H, L, D)``.
        key_padding_mask: optional bool ``(B, L)``, True = real token.  Padded keys are never
            attended; padded query rows return zeros.
        num_prefix: number of leading always-visible positions, ``0 <= num_prefix <= L``.
        scale: score scale, default ``1/sqrt(D)``.
        dropout_p: attention dropout, ``0 <= p < 1``: each attention probability is zeroed
            with probability p after the softmax, the others scaled by ``1/(1-p)`` (always
            applied when > 0; layers pass 0 outside training).
        dropout_seed: seed of the dropout mask (``0 <= seed < 2**63``); the same seed gives
            the same mask on every backend.  None draws one from torch's default generator.
        backend: ``"auto"``, ``"reference"`` or ``"triton"`` (see :mod:`igrsr.ops.dispatch`).
    """
    validate_causal_attention(q, k, v, key_padding_mask, num_prefix)
    scale = resolve_scale(scale, q.shape[-1])
    dropout_p, seed = resolve_dropout(dropout_p, dropout_seed)
    inputs = (q, k, v, key_padding_mask, num_prefix, scale, dropout_p, seed)
    impl = dispatcher.select(backend, q.device, inputs).impl
    return impl(*inputs)


from . import triton as _triton_backend  # noqa: E402,F401  (registers backend "triton")
