"""``igrsr export RUN_DIR --out DIR``: a trained run as a self-contained top-K scorer (:mod:`igrsr.export`)."""

import argparse
from pathlib import Path

from ..export import check_out, export_run
from ..train.runs import run_description
from .data import add_data_options, data_config, run_data
from .options import CommandError


def command_export(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise CommandError(f"--k must be >= 1, got {args.k}")
    data_config(args)
    check_out(Path(args.out))  # before anything is read
    run_dir = Path(args.run)
    data = run_data(args, run_description(run_dir))
    about = export_run(run_dir, data, Path(args.out), k=args.k, exclude_history=not args.include_history)
    print(f"{about['model']} of {run_dir}: top-{args.k} scorer in {args.out} ({', '.join(about['files'])})")
    print(f"use: {about['usage']}")
    return 0


def add_export_command(commands) -> None:
    export = commands.add_parser(
        "export", help="a run's best model as a self-contained top-K scorer (torch.export; ONNX where installed)"
    )
    export.add_argument("run", help="a run directory (OUT/<dataset>/<model>-<hash>)")
    export.add_argument("--out", required=True, help="folder of the export (new, or an earlier export to replace)")
    export.add_argument("--k", type=int, default=10, help="items the scorer returns per history (default 10)")
    export.add_argument(
        "--include-history", action="store_true", help="may recommend items of the history given (default: never)"
    )
    add_data_options(export, "the run's dataset file, for its ids (default: the file it trained on, read as it was)")
    export.set_defaults(handler=command_export)
