"""Random item replacement for the noise robustness study (docs/design.md §2)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def inject_noise(sequences: Sequence[np.ndarray], fraction: float, num_items: int, seed: int) -> list[np.ndarray]:
    """Return copies of the sequences with ``round(fraction * len)`` random positions each
    replaced by uniformly random items in ``1..num_items``.

    Positions are distinct within a sequence; rounding is half up, so 10% of a length-5
    sequence replaces one item. A replacement may draw the original item (probability
    ``1 / num_items``). Apply it to histories only: targets stay as they are.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if num_items < 1:
        raise ValueError(f"num_items must be positive, got {num_items}")
    rng = np.random.default_rng(seed)
    noisy_sequences = []
    for sequence in sequences:
        noisy = np.array(sequence, dtype=np.int64)
        num_replaced = int(np.floor(fraction * len(noisy) + 0.5))
        positions = rng.choice(len(noisy), size=num_replaced, replace=False)
        noisy[positions] = rng.integers(1, num_items + 1, size=num_replaced)
        noisy_sequences.append(noisy)
    return noisy_sequences
