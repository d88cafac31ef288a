"""``--data`` and the reader options of every command that reads a data file.

The reader options (``--columns``, ``--sep``, ``--min-rating``, ``--k-core``, ...) are the fields
of :class:`igrsr.data.DataConfig`, generated like every other option.  A command over existing
runs (``evaluate``, ``export``) given no reader option reads the data as the run recorded it
(``run.json``'s ``data.source``): the same file, or the ``--data`` copy of it, with the same
options, hence the same item numbering.
"""

import argparse
from typing import Any, Mapping

from ..data import DataConfig, InteractionData, load_data, reload_data
from .options import add_config_options, config_values, given


def add_data_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--data", default=None, help=help_text)
    add_config_options(parser, DataConfig, "reading --data (header-less files, ids, preprocessing)")


def data_config(args: argparse.Namespace) -> DataConfig:
    """The reader options given (checked when built, before anything is read or trained)."""
    return DataConfig(**config_values(args, DataConfig))


def reader_options_given(args: argparse.Namespace) -> bool:
    return bool(given(args, DataConfig.__dataclass_fields__))


def describe_data(data: InteractionData) -> None:
    print(f"data: {data.name}: {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")


def command_data(args: argparse.Namespace, synthetic: Mapping[str, Any] = {}) -> InteractionData:
    """The data of a command that trains: ``--data`` read with the reader options given."""
    data = load_data(args.data, data_config(args), synthetic)
    describe_data(data)
    return data


def run_data(args: argparse.Namespace, description: Mapping[str, Any]) -> InteractionData:
    """The data of an existing run (``description``: its run.json): read with the reader options
    given, or, when none is, as the run recorded it (from ``--data`` where given)."""
    source = description.get("data", {}).get("source")
    if source and not reader_options_given(args):
        return reload_data(source, args.data)
    return load_data(args.data, data_config(args))
