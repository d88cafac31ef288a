"""The ``igrsr`` command line (also ``python -m igrsr``).

``igrsr train`` with no arguments trains SASRec and IGR-SR on the embedded synthetic data and
prints them side by side.  ``igrsr study`` runs the paper's experiments (every model, noise
robustness, ablations, sweeps) and writes a report; ``--quick`` is a small version.  ``igrsr
evaluate RUN_DIR ...`` scores runs' best checkpoints, an interrupted run's included, and with
``--versus RUN_DIR`` compares each with another run user by user.  ``igrsr report STUDY ...
--out DIR`` makes one report of several studies; ``igrsr report --results MANIFEST`` the
results page.  ``igrsr export RUN_DIR --out DIR`` writes a run's model as a self-contained
top-K scorer (torch.export, ONNX) with the data's id maps; ``igrsr recommend RUN_DIR --data
PATH --k K --out FILE`` every user's top-K items as CSV or Parquet.  ``igrsr migrate PATH``
rewrites files of an older igrsr.

Every model option and training setting is generated from its dataclass (:mod:`.options`);
a bad value, file or option ends the command with one line naming it and exit status 2
(``--debug`` shows the traceback instead).
"""

import argparse
import sys
from typing import List, Optional

import torch

from ..config import ConfigError
from ..ops import BackendUnavailableError
from ..train.rundir import RunBusyError
from .export import add_export_command
from .options import (
    MODEL_OPTIONS_KEY,
    CommandError,
    config_file_path,
    file_defaults,
    flag,
    model_fields,
    read_config_file,
)
from .recommend import add_recommend_command
from .study import add_study_commands
from .train import add_train_command

EXIT_BAD_INPUT = 2


def command_migrate(args: argparse.Namespace) -> int:
    from ..migrate import migrate

    for path in args.paths:
        done = migrate(path)
        print("\n".join(done) if done else f"{path}: nothing to migrate (schema is current)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igrsr", description="Intent-guided sequential recommendation")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    commands = parser.add_subparsers(dest="command")
    add_train_command(commands)
    add_study_commands(commands)
    add_export_command(commands)
    add_recommend_command(commands)
    migrate = commands.add_parser("migrate", help="rewrite run directories and study files of an older igrsr")
    migrate.add_argument("paths", nargs="+", help="study.json files, or folders searched for studies and runs")
    migrate.set_defaults(handler=command_migrate)
    return parser


def parse(parser: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    """The arguments, with a ``--config`` file's values as defaults the command line overrides."""
    path = config_file_path(argv)
    command_line = parser.parse_args(argv)
    if path is None or command_line.command is None:
        command_line.given_on_command_line = set()
        return command_line
    subparser = parser._subparsers._group_actions[0].choices[command_line.command]
    subparser.set_defaults(**file_defaults(subparser, read_config_file(path), path))
    args = parser.parse_args(argv)
    args.given_on_command_line = {name for name in model_fields() if getattr(command_line, name, None) is not None}
    return args


# What a user's input can cause: bad options, config files and data (DataFormatError and
# UnicodeError are ValueErrors), and files that cannot be read or written (OSError: missing,
# a directory, no permission, disk full), a run directory another process trains in, a
# training its settings make diverge (FloatingPointError: a non-finite loss), and sizes the
# memory cannot hold.  Anything else is a bug and keeps its traceback.
OUT_OF_MEMORY = (MemoryError, torch.cuda.OutOfMemoryError)
USER_ERRORS = (
    CommandError, ConfigError, BackendUnavailableError, ValueError, OSError, RunBusyError, FloatingPointError,
    *OUT_OF_MEMORY,
)  # fmt: skip


def one_line(error: BaseException) -> str:
    if isinstance(error, ConfigError):
        return f"{flag(error.option)} {error.problem}"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, OUT_OF_MEMORY):
        message = " ".join(str(error).split()) or type(error).__name__
        return f"out of memory ({message}); smaller --batch-size, --eval-batch-size, --max-len or --d-model need less"
    if isinstance(error, FloatingPointError):
        return f"{error}: the training diverged; a lower --lr (or --stage2-lr) or other options may keep it finite"
    return " ".join(str(error).split())


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    debug = "--debug" in argv
    try:
        args = parse(parser, argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        args.argv = argv  # what `train --nproc` runs again in every process
        return args.handler(args)
    except USER_ERRORS as error:
        if debug:
            raise
        command = next((word for word in argv if not word.startswith("-")), "")
        print(f"igrsr {command}: error: {one_line(error)}".replace("  ", " "), file=sys.stderr)
        return EXIT_BAD_INPUT


__all__ = ["MODEL_OPTIONS_KEY", "build_parser", "main"]
