"""Attention-probability dropout shared by the attention ops: its arguments, its seed, and its
keep-mask computed in PyTorch exactly as the Triton kernels draw it.

As in FlashAttention and ``torch.nn.functional.scaled_dot_product_attention``, dropout acts on
the normalized softmax probabilities, and the kept ones are scaled by ``1/(1-p)`` so the
output's expectation is unchanged.

The mask is counter-based, so no backend stores it: one Philox-4x32-10 call (key ``seed``)
yields four 32-bit words, which decide four neighbouring probabilities of a row, as in
FlashAttention.  Probability ``(b·h, row, col)`` of a ``(B·H, rows, cols)`` tensor takes word
``col % 4`` of the call with counter ``(b·h · rows + row) · ceil(cols / 4) + col // 4``, read as
a float in [0, 1) as ``tl.uint_to_uniform_float`` does, and is kept when that is ``>= p``.  The
kernels (``triton_common.dropout_keep``) recompute it from the position in the forward and the
backward; the references compute the same bits here, so all backends drop the same
probabilities for the same seed and can be compared exactly.
"""

import math
from typing import Optional, Sequence, Tuple

import torch

from .validation import check_probability

WORD = 0xFFFFFFFF
# Philox-4x32 constants (Salmon et al. 2011), as in triton.language.random.
ROUND_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
KEY_INCREMENTS = (0x9E3779B9, 0xBB67AE85)
ROUNDS = 10
# Triton's uint→[0, 1) scale: the largest float with (2**31 - 1) · scale < 1.
UNIFORM_SCALE = 4.6566127342e-10
# Philox calls per chunk: bounds the int64 temporaries (and keeps them in cache).
CHUNK_CALLS = 1 << 15
WORDS_PER_CALL = 4
SEED_LIMIT = 1 << 63


def draw_seed() -> int:
    """A dropout seed from torch's default generator, so ``torch.manual_seed`` makes runs
    reproducible.  Below 2**31, so kernels always see the seed as a 32-bit integer."""
    return int(torch.randint(0, 1 << 31, (), dtype=torch.int64))


def resolve_dropout(dropout_p, dropout_seed: Optional[int]) -> Tuple[float, int]:
    """(p, seed) checked; the seed is drawn (:func:`draw_seed`) when None and p > 0, and is 0
    (unused) when p == 0."""
    dropout_p = check_probability("dropout_p", dropout_p)
    if dropout_seed is not None:
        if isinstance(dropout_seed, bool) or not isinstance(dropout_seed, int):
            raise TypeError(f"dropout_seed must be an int or None, got {type(dropout_seed).__name__}")
        if not 0 <= dropout_seed < SEED_LIMIT:
            raise ValueError(f"dropout_seed must be in [0, 2**63), got {dropout_seed}")
    if dropout_p == 0:
        return 0.0, 0
    return dropout_p, draw_seed() if dropout_seed is None else dropout_seed


def _multiply_high_low(multiplier: int, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit words of ``multiplier · x`` for words ``x`` held in int64, through
    16-bit halves of the multiplier so no product overflows int64."""
    low_product = x * (multiplier & 0xFFFF)
    upper = x * (multiplier >> 16) + (low_product >> 16)
    return upper >> 16, ((upper & 0xFFFF) << 16) | (low_product & 0xFFFF)


def philox_words(seed: int, counters: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The four 32-bit words (in int64) of Philox-4x32-10 for int64 ``counters``, key ``seed``:
    ``tl.randint4x(seed, counters)``."""
    key_low, key_high = seed & WORD, seed >> 32
    c0, c1 = counters & WORD, counters >> 32
    c2 = c3 = torch.zeros_like(counters)
    for _ in range(ROUNDS):
        high_a, low_a = _multiply_high_low(ROUND_MULTIPLIERS[0], c0)
        high_b, low_b = _multiply_high_low(ROUND_MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = high_b ^ c1 ^ key_low, low_b, high_a ^ c3 ^ key_high, low_a
        key_low = (key_low + KEY_INCREMENTS[0]) & WORD
        key_high = (key_high + KEY_INCREMENTS[1]) & WORD
    return c0, c1, c2, c3


def words_to_uniform(words: torch.Tensor) -> torch.Tensor:
    """float32 in [0, 1) from 32-bit words, as ``tl.uint_to_uniform_float``: the word read as
    int32, negatives bit-flipped, times :data:`UNIFORM_SCALE`."""
    folded = torch.where(words >= 1 << 31, words ^ WORD, words)
    return folded.to(torch.float32) * torch.tensor(UNIFORM_SCALE, dtype=torch.float32, device=words.device)


def dropout_keep_mask(seed: int, shape: Sequence[int], dropout_p: float, device) -> torch.Tensor:
    """bool ``shape`` ``(..., rows, cols)``: which probabilities survive, leading dims flattened
    into the ``b·h`` of the module docstring."""
    *_, cols = shape
    calls_per_row = -(-cols // WORDS_PER_CALL)
    total_calls = calls_per_row * (math.prod(shape) // cols if cols else 0)
    threshold = torch.tensor(dropout_p, dtype=torch.float32, device=device)
    keep = torch.empty(total_calls * WORDS_PER_CALL, dtype=torch.bool, device=device)
    for first in range(0, total_calls, CHUNK_CALLS):
        counters = torch.arange(first, min(first + CHUNK_CALLS, total_calls), device=device)
        words = torch.stack(philox_words(seed, counters), dim=1).flatten()  # word w of call c at 4c + w
        keep[WORDS_PER_CALL * first : WORDS_PER_CALL * first + words.numel()] = words_to_uniform(words) >= threshold
    # Rows hold whole calls: drop the words past the last column.
    return keep.view(-1, calls_per_row * WORDS_PER_CALL)[:, :cols].reshape(tuple(shape))


def drop_probabilities(probs: torch.Tensor, dropout_p: float, seed: int) -> torch.Tensor:
    """``probs`` (B, H, rows, cols) with the dropped ones zeroed and the kept ones scaled by
    ``1/(1-p)``; ``probs`` itself when p == 0."""
    if dropout_p == 0:
        return probs
    keep = dropout_keep_mask(seed, probs.shape, dropout_p, probs.device)
    return torch.where(keep, probs * (1.0 / (1.0 - dropout_p)), 0.0)
