"""Configuration dataclasses: defaults, value checks and command-line options from one declaration.

A model's options (each model's ``Config``, e.g. :class:`igrsr.models.sasrec.SASRecConfig`) and
the training settings (:class:`igrsr.train.TrainConfig`) are frozen dataclasses whose fields are
declared with :func:`option`: a default, a help text and the bounds a value must respect.  That
one declaration gives

* the constructor's defaults (``SASRec(num_items, dropout=0.3)`` overrides one of them);
* the value checks, run when a config is built, so a bad value fails before any training and
  the error names the option (:class:`ConfigError`);
* the command line's options and the keys a YAML/JSON config file may set (:mod:`igrsr.cli.options`);
* the run key: a digest of every resolved field (:func:`digest`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from typing import Any, Dict, Literal, Mapping, Optional, Tuple, Type, TypeVar

C = TypeVar("C", bound="Config")
FLOAT32_MAX = 3.4028234663852886e38


class ConfigError(ValueError):
    """An option has a value it cannot take; ``option`` is its field name."""

    def __init__(self, option: str, problem: str):
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem


def option(
    default: Any,
    help: str,
    *,
    ge: Optional[float] = None,
    gt: Optional[float] = None,
    le: Optional[float] = None,
    lt: Optional[float] = None,
    runtime: bool = False,
) -> Any:
    """A config field: its default, what it means (``--help``), and the bounds of its value.

    ``runtime=True`` marks settings that change where or how fast a run computes, never what
    (device, evaluation batch size, progress bars): they stay out of the run key.
    """
    return dataclasses.field(default=default, metadata={"help": help, "bounds": (ge, gt, le, lt), "runtime": runtime})


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config: checks each field against its type and bounds when built."""

    def __post_init__(self) -> None:
        for field, hint in typed_fields(type(self)):
            value = check_type(field.name, hint, getattr(self, field.name))
            object.__setattr__(self, field.name, value)  # an int given for a float becomes a float
            check_bounds(field, value)
        self.check()

    def check(self) -> None:
        """Checks across fields (subclasses); raise :class:`ConfigError` naming the option."""

    @classmethod
    def from_dict(cls: Type[C], values: Mapping[str, Any], source: str = "") -> C:
        """A config from ``values``; a key that is not a field is an error naming ``source``."""
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = [key for key in values if key not in names]
        if unknown:
            where = f" in {source}" if source else ""
            raise ConfigError(unknown[0], f"is not an option of {cls.__name__}{where}; options are {names}")
        return cls(**values)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def keyed(self) -> Dict[str, Any]:
        """The fields that decide what a run computes (``runtime`` ones left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("runtime")}


def typed_fields(cls: type) -> Tuple[Tuple[dataclasses.Field, Any], ...]:
    """``(field, resolved type hint)`` of every field of a config class."""
    hints = typing.get_type_hints(cls)
    return tuple((field, hints[field.name]) for field in dataclasses.fields(cls))


def choices_of(hint: Any) -> Optional[Tuple[Any, ...]]:
    """The values a ``Literal[...]`` (or ``Optional[Literal[...]]``) hint allows, else None."""
    hint = non_optional(hint)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def non_optional(hint: Any) -> Any:
    """``X`` for ``Optional[X]``; other hints unchanged."""
    if typing.get_origin(hint) is typing.Union:
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return hint


def is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)


def check_type(name: str, hint: Any, value: Any) -> Any:
    """``value`` as the field's type (an int for a float field becomes a float), or ConfigError."""
    if value is None:
        if is_optional(hint):
            return None
        raise ConfigError(name, "must be set")
    base = non_optional(hint)
    choices = choices_of(base)
    if choices is not None:
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, f"must be true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"must be an integer, got {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {value!r}")
        if abs(value) > FLOAT32_MAX:  # what the models compute in: a larger value is inf there
            raise ConfigError(name, f"must be a finite float32 number (size at most {FLOAT32_MAX:.4g}), got {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(name, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"config field {name!r} has a type the checks do not know: {hint!r}")


def check_bounds(field: dataclasses.Field, value: Any) -> None:
    ge, gt, le, lt = field.metadata.get("bounds", (None,) * 4)
    if value is None or isinstance(value, (bool, str)):
        return
    failed = (
        (ge is not None and value < ge)
        or (gt is not None and value <= gt)
        or (le is not None and value > le)
        or (lt is not None and value >= lt)
    )
    if failed:
        raise ConfigError(field.name, f"must be {describe_bounds(ge, gt, le, lt)}, got {value!r}")


def describe_bounds(ge, gt, le, lt) -> str:
    """``">= 1"``, ``"in [0, 1)"``, ... for an error message or ``--help``."""
    ge, gt, le, lt = (bound if bound is None or isinstance(bound, int) else f"{bound:g}" for bound in (ge, gt, le, lt))
    low = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else None
    high = f"{le}]" if le is not None else f"{lt})" if lt is not None else None
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f">= {ge}" if ge is not None else f"> {gt}"
    if high:
        return f"<= {le}" if le is not None else f"< {lt}"
    return "any value"


def digest(value: Any, length: int = 10) -> str:
    """A short, stable hash of a JSON-able value (dict keys in sorted order)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]
