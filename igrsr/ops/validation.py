"""Input checks shared by the ops: each failure names the argument at fault."""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# The smallest temperature whose inverse, the logits' scale, is finite in float32.
MIN_TEMPERATURE = 1.0 / torch.finfo(torch.float32).max


def check_tensor(
    name: str,
    value,
    ndim: int,
    dtypes: Optional[Sequence[torch.dtype]] = FLOAT_DTYPES,
) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    if dtypes is not None and value.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype in ({names}), got {value.dtype}")
    return value


def check_head_dim(name: str, value: torch.Tensor) -> None:
    """At least one feature per head: the default scale is ``1/sqrt(D)``."""
    if value.shape[-1] < 1:
        raise ValueError(f"{name} must have a head dim (last dimension) >= 1, got shape {tuple(value.shape)}")


def check_shape(name: str, value: torch.Tensor, expected: Sequence[int]) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(value.shape)}")


def check_same_device(reference_name: str, reference: torch.Tensor, **others: Optional[torch.Tensor]) -> None:
    for name, value in others.items():
        if value is not None and value.device != reference.device:
            raise ValueError(f"{name} is on {value.device} but {reference_name} is on {reference.device}")


def check_same(reference_name: str, reference: torch.Tensor, **others: Optional[torch.Tensor]) -> None:
    """Every other tensor is on the reference's device; float ones share its dtype."""
    check_same_device(reference_name, reference, **others)
    for name, value in others.items():
        if value is None:
            continue
        if value.is_floating_point() and value.dtype != reference.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but {reference_name} has {reference.dtype}")


def check_mask(name: str, mask: Optional[torch.Tensor], shape: Sequence[int], device) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    check_tensor(name, mask, len(shape), dtypes=(torch.bool,))
    check_shape(name, mask, shape)
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but the inputs are on {device}")
    return mask


def check_positive_finite(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_probability(name: str, value) -> float:
    """A dropout probability: a real number (not a bool or a string) with ``0 <= value < 1``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not 0 <= value < 1:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_positive_temperature(name: str, value) -> float:
    """A finite ``τ > 0`` whose ``1/τ`` is finite in float32, the precision logits are scaled in
    (a smaller one makes every logit infinite and the loss NaN)."""
    number = check_positive_finite(name, value)
    if number < MIN_TEMPERATURE:
        raise ValueError(f"{name} must be at least {MIN_TEMPERATURE:.4g} (1/{name} overflows), got {value!r}")
    return number


def resolve_scale(scale, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    return check_positive_finite("scale", scale)
