"""``igrsr recommend RUN_DIR --data PATH --k K --out FILE``: every user's top-K items (:mod:`igrsr.recommend`)."""

import argparse
from pathlib import Path

from ..recommend import DEFAULT_BATCH_USERS, output_format, recommend_run
from ..train.config import resolve_device
from ..train.runs import run_description
from .data import add_data_options, data_config, run_data
from .options import CommandError


def command_recommend(args: argparse.Namespace) -> int:
    for name in ("k", "batch_size", "chunk_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    data_config(args)
    output_format(Path(args.out))  # before anything is read
    if args.users is not None and not Path(args.users).is_file():
        raise CommandError(f"--users {args.users}: no such file")
    run_dir = Path(args.run)
    data = run_data(args, run_description(run_dir))
    written = recommend_run(
        run_dir, data, Path(args.out), k=args.k, users_file=args.users, keep_seen=args.keep_seen,
        device=resolve_device(args.device), batch_size=args.batch_size, chunk_size=args.chunk_size,
        progress=not args.no_progress,
    )  # fmt: skip
    print(f"{args.out}: top-{args.k} items of {written} users")
    return 0


def add_recommend_command(commands) -> None:
    recommend = commands.add_parser(
        "recommend", help="the top-K items for every user of a run's data (CSV or Parquet), seen items left out"
    )
    recommend.add_argument("run", help="a run directory (OUT/<dataset>/<model>-<hash>)")
    recommend.add_argument("--out", required=True, help="output file: .csv (user,rank,item,score) or .parquet")
    recommend.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    recommend.add_argument("--users", default=None, help="only these users: a file of user ids, one per line")
    recommend.add_argument(
        "--keep-seen", action="store_true", help="may recommend items the user already has (default: never)"
    )
    recommend.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, ... (default cpu)")
    recommend.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_USERS, help=f"users per batch (default {DEFAULT_BATCH_USERS})"
    )
    recommend.add_argument(
        "--chunk-size", type=int, default=None, help="items scored at a time (default: 256 MiB of scores per batch)"
    )
    recommend.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_options(recommend, "the run's dataset file (default: the file it trained on, read as it was)")
    recommend.set_defaults(handler=command_recommend)
