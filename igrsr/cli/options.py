"""Command-line options generated from the config dataclasses, and YAML/JSON config files.

Every model option (a field of some model's ``Config``) and every training setting (a field of
:class:`TrainConfig`, :class:`Stage2Config`) is declared once, in its dataclass; this module
turns the declarations into ``argparse`` options.  A model option left unset keeps each model's
own published default; given, it reaches every model of the command that has it — an explicit
override, never a replacement of a model's default by a shared one.

Precedence, highest first: the command line; a config file's per-model section
(``model_options: {bert4rec: {dropout: 0.2}}``); the config file's top-level keys; for training
settings on the embedded synthetic data, ``SYNTHETIC_TRAINING``; the dataclass default.
"""

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type

from ..config import Config, choices_of, describe_bounds, non_optional, typed_fields
from ..models.registry import BACKBONE, MODELS, model_entry

CONFIG_OPTION = "--config"
MODEL_OPTIONS_KEY = "model_options"


class CommandError(Exception):
    """A command's input is wrong; the message is one line for the terminal (exit status 2)."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def model_fields() -> Dict[str, List[Tuple[str, Any, Any]]]:
    """``{field: [(model, type hint, default), ...]}`` over every registered model's config."""
    fields: Dict[str, List[Tuple[str, Any, Any]]] = {}
    for model, entry in MODELS.items():
        for field, hint in typed_fields(entry.config):
            fields.setdefault(field.name, []).append((model, hint, field))
    return fields


def describe_defaults(owners: Sequence[Tuple[str, Any, Any]]) -> str:
    """``"default 0.5; bert4rec 0.1"``: the most common default, then the models that differ."""
    defaults = {model: field.default for model, _, field in owners}
    common, _ = Counter(map(repr, defaults.values())).most_common(1)[0]
    others = [f"{model} {value!r}" for model, value in defaults.items() if repr(value) != common]
    models = "" if len(owners) == len(MODELS) else f"{', '.join(model for model, _, _ in owners)}; "
    return f"{models}default {common}" + (f"; {', '.join(others)}" if others else "")


def add_field_option(group, name: str, hint: Any, help_text: str) -> None:
    """One ``--name`` option of a field's type (choices for a Literal); unset, it is None."""
    base = non_optional(hint)
    choices = choices_of(base)
    if base is bool:
        group.add_argument(flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        return
    kind = type(choices[0]) if choices else base
    metavar = None if choices else kind.__name__.upper()
    group.add_argument(flag(name), dest=name, type=kind, choices=choices, default=None, metavar=metavar, help=help_text)


def field_help(field, hint) -> str:
    ge, gt, le, lt = field.metadata.get("bounds", (None,) * 4)
    bounds = "" if (ge, gt, le, lt) == (None,) * 4 else f"; {describe_bounds(ge, gt, le, lt)}"
    return f"{field.metadata.get('help', '')} ({{default}}{bounds})"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Every model option, once, with each model's default in its help."""
    group = parser.add_argument_group("model options (unset: each model's own published default)")
    for name, owners in sorted(model_fields().items()):
        hints = {repr(non_optional(hint)) for _, hint, _ in owners}
        if len(hints) > 1:
            raise TypeError(f"models declare option {name!r} with different types: {sorted(hints)}")
        _, hint, field = owners[0]
        add_field_option(group, name, hint, field_help(field, hint).format(default=describe_defaults(owners)))


def add_config_options(
    parser: argparse.ArgumentParser, cls: Type[Config], title: str, skip: Iterable[str] = ()
) -> None:
    """The fields of ``cls`` (a training config) as options; ``skip`` leaves some out."""
    group = parser.add_argument_group(title)
    for field, hint in typed_fields(cls):
        if field.name not in skip:
            add_field_option(
                group, field.name, hint, field_help(field, hint).format(default=f"default {field.default!r}")
            )


def add_config_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        CONFIG_OPTION, metavar="FILE", default=None,
        help=f"YAML or JSON file of options (keys as the options' names; a '{MODEL_OPTIONS_KEY}' "
        "section sets one model's); the command line overrides it",
    )  # fmt: skip


def given(args: argparse.Namespace, names: Iterable[str]) -> Dict[str, Any]:
    """The options among ``names`` that were given (on the command line or in a config file)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def config_values(args: argparse.Namespace, cls: Type[Config], presets: Mapping[str, Any] = {}) -> Dict[str, Any]:
    """The given fields of ``cls``, ``presets`` filling the unset ones."""
    names = [field.name for field, _ in typed_fields(cls)]
    values = {name: value for name, value in presets.items() if name in names}
    return {**values, **given(args, names)}


def model_options(args: argparse.Namespace, models: Sequence[str]) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """(options given for every model, per-model options from a config file) for ``models``
    (and the SASRec a stage-2 model trains over).  An option no such model has is an error."""
    in_play = set(models) | ({BACKBONE} if any(model_entry(m).needs_backbone for m in models) else set())
    owners = model_fields()
    shared = given(args, owners)
    for name in shared:
        takers = [model for model, _, _ in owners[name]]
        if not in_play & set(takers):
            raise CommandError(
                f"{flag(name)}: no model of this command takes it ({', '.join(sorted(in_play))}); "
                f"it is an option of {', '.join(takers)}"
            )
    per_model = {
        model: {name: value for name, value in values.items() if name not in args.given_on_command_line}
        for model, values in (getattr(args, MODEL_OPTIONS_KEY, None) or {}).items()
    }
    return shared, per_model


def config_file_path(argv: Sequence[str]) -> Optional[str]:
    """The value of ``--config`` in ``argv`` (``--config F`` or ``--config=F``), if any."""
    for index, word in enumerate(argv):
        if word == CONFIG_OPTION:
            if index + 1 == len(argv):
                raise CommandError(f"{CONFIG_OPTION}: expected a file name")
            return argv[index + 1]
        if word.startswith(CONFIG_OPTION + "="):
            return word.split("=", 1)[1]
    return None


def read_config_file(path: str) -> Dict[str, Any]:
    """A YAML (.yaml/.yml) or JSON file's mapping, or a one-line error naming the file."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{CONFIG_OPTION}: {path} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            content = yaml.safe_load(text)
        else:
            content = json.loads(text)
    except Exception as error:  # yaml.YAMLError, json.JSONDecodeError
        message = " ".join(str(error).split())
        raise CommandError(
            f"{path}: not valid {'YAML' if file.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {message}"
        ) from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise CommandError(f"{path}: expected a mapping of option names to values, got {type(content).__name__}")
    return content


def file_defaults(parser: argparse.ArgumentParser, content: Mapping[str, Any], path: str) -> Dict[str, Any]:
    """A config file's values as defaults of ``parser`` (a subcommand's), each checked the way
    the command line checks it; an unknown key or a bad value names the file and the key."""
    actions = {action.dest: action for action in parser._actions if action.dest not in ("help", "config")}
    defaults: Dict[str, Any] = {}
    for key, value in content.items():
        name = str(key).replace("-", "_")
        if name == MODEL_OPTIONS_KEY:
            defaults[name] = file_model_options(value, path, actions)
            continue
        if name not in actions:
            raise CommandError(f"{path}: unknown option {key!r}; see --help for the options of this command")
        defaults[name] = file_value(actions[name], value, f"{path}: {key}")
    return defaults


def file_value(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, list):  # a YAML list for a comma-separated option
        value = ",".join(map(str, value))
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        if not isinstance(value, bool):
            raise CommandError(f"{where}: expected true or false, got {value!r}")
        return value
    if action.type is not None and isinstance(value, str):
        try:
            value = action.type(value)
        except (TypeError, ValueError):
            raise CommandError(f"{where}: invalid {getattr(action.type, '__name__', 'value')} {value!r}") from None
    if action.choices is not None and value not in action.choices:
        raise CommandError(f"{where}: expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


def file_model_options(section: Any, path: str, actions: Mapping[str, argparse.Action]) -> Dict[str, Dict[str, Any]]:
    """A config file's ``model_options`` section: ``{model: {option: value}}``, each value checked
    as the command line's option of that name checks it."""
    if not isinstance(section, dict):
        raise CommandError(f"{path}: {MODEL_OPTIONS_KEY} must map model names to options")
    checked = {}
    for model, values in section.items():
        if model not in MODELS:
            raise CommandError(
                f"{path}: {MODEL_OPTIONS_KEY}: unknown model {model!r}; choose from {', '.join(sorted(MODELS))}"
            )
        if not isinstance(values, dict):
            raise CommandError(f"{path}: {MODEL_OPTIONS_KEY}.{model} must map option names to values")
        fields = MODELS[model].config.__dataclass_fields__
        unknown = [name for name in values if str(name).replace("-", "_") not in fields]
        if unknown:
            raise CommandError(
                f"{path}: {MODEL_OPTIONS_KEY}.{model}: {model} has no option {unknown[0]!r}; it has {', '.join(fields)}"
            )
        checked[model] = {
            str(name).replace("-", "_"): file_value(
                actions[str(name).replace("-", "_")], value, f"{path}: {MODEL_OPTIONS_KEY}.{model}.{name}"
            )
            for name, value in values.items()
        }
    return checked
