"""``igrsr train`` and ``igrsr evaluate``."""

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from ..data import InteractionData, Split, is_synthetic, leave_one_out
from ..distributed import is_main_process, launched_world_size, process_group, run_processes
from ..eval import model_ranks, parse_metric, per_user_metric, ranking_metrics
from ..models.registry import MODELS
from ..study import format_paired, paired_bootstrap
from ..train import SYNTHETIC_TRAINING, Stage2Config, TrainConfig, make_spec, train_model
from ..train.checkpoint import save_json
from ..train.config import resolve_device
from ..train.runs import is_finished, load_best, resume_problem, run_description
from .data import add_data_options, command_data, data_config, run_data
from .options import (
    CommandError,
    add_config_file_option,
    add_config_options,
    add_model_options,
    config_values,
    model_options,
)  # fmt: skip

DEFAULT_MODELS = "sasrec,igrsr"
REPORTED_METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10")
# Columns after the metrics in the tables the commands print: result key -> header.
TRAIN_COLUMNS = {"best_epoch": "epochs", "seconds_per_epoch": "s/epoch"}
EVALUATE_COLUMNS = {"best_epoch": "best ep", "finished": "finished"}
RUNTIME_OPTIONS = ("device", "eval_batch_size")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The model options, the training settings and the stage-2 changes, from their dataclasses."""
    add_model_options(parser)
    add_config_options(parser, TrainConfig, "training (on the embedded synthetic data: lr 3e-3, batch 128, patience 3)")
    add_config_options(parser, Stage2Config, "IGR-SR's stage 2 over its SASRec (synthetic data: stage2-lr 1e-3)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    add_config_file_option(parser)


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """Where and how fast a command computes; none of these change its results."""
    add_config_options(parser, TrainConfig, "runtime", skip=[name for name in TrainConfig.__dataclass_fields__
                                                            if name not in RUNTIME_OPTIONS])  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def set_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def uses_synthetic_data(args: argparse.Namespace) -> bool:
    return is_synthetic(args.data)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The training settings given, the synthetic data's presets for the others there."""
    presets = SYNTHETIC_TRAINING if uses_synthetic_data(args) else {}
    return available(TrainConfig(**config_values(args, TrainConfig, presets)))


def available(config: TrainConfig) -> TrainConfig:
    """``config`` if its device is on this machine.  (Checked here, not in TrainConfig, which
    also reads the settings of runs made elsewhere.)"""
    available_device(config.device)
    return config


def available_device(name: str) -> str:
    """``name`` (``auto`` resolved) if this machine has that device, else a one-line error."""
    try:
        device = torch.device(resolve_device(name))
    except RuntimeError:
        raise CommandError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise CommandError(f"--device {name}: this machine has {count} CUDA device(s) visible to torch")
    return str(device)


def stage2_config(args: argparse.Namespace) -> Stage2Config:
    presets = SYNTHETIC_TRAINING if uses_synthetic_data(args) else {}
    return Stage2Config(**config_values(args, Stage2Config, presets))


def parse_list(text: str, kind: type, option: str) -> Tuple:
    """``"1,2,3"`` as a tuple of ``kind``; an empty string is the empty tuple (skip that part)."""
    try:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise CommandError(f"{option}: expected comma-separated {kind.__name__} values, got {text!r}") from None


def parse_models(text: str, option: str = "--model") -> List[str]:
    names = list(parse_list(text, str, option))
    unknown = [name for name in names if name not in MODELS]
    if not names or unknown:
        problem = f"unknown model(s) {unknown}" if unknown else "no model given"
        raise CommandError(f"{option}: {problem}; choose from {', '.join(sorted(MODELS))}")
    return names


def format_table(results: List[Dict], columns: Dict[str, str]) -> str:
    """Test metrics of each result, one row per model, then the ``columns`` of each."""
    header = f"{'model':<14}" + "".join(f"{name:>9}" for name in (*REPORTED_METRICS, *columns.values()))
    lines = [header, "-" * len(header)]
    for result in results:
        cells = [f"{result['test'][name]:>9.4f}" for name in REPORTED_METRICS]
        cells += [f"{result[k]:>9.1f}" if isinstance(result[k], float) else f"{result[k]!s:>9}" for k in columns]
        lines.append(f"{result['model']:<14}" + "".join(cells))
    return "\n".join(lines)


def command_train(args: argparse.Namespace) -> int:
    """Train the models; with ``--nproc N`` (or under ``torchrun``) in N data-parallel processes."""
    if args.nproc is not None and args.nproc < 1:
        raise CommandError(f"--nproc must be >= 1, got {args.nproc}")
    world = launched_world_size()
    if args.nproc not in (None, world):
        if world > 1:
            raise CommandError(f"--nproc {args.nproc} under torchrun with {world} processes: give one of them")
        from . import main  # every process runs the command line again

        return run_processes(args.nproc, main, args.argv)
    train = train_config(args)
    with process_group(train.device) as device:
        return train_models(args, replace(train, device=device))


def train_models(args: argparse.Namespace, train: TrainConfig) -> int:
    set_threads(args)
    models = parse_models(args.model)
    if args.backbone_run is not None and not any(MODELS[name].needs_backbone for name in models):
        stage2 = ", ".join(name for name, entry in MODELS.items() if entry.needs_backbone)
        raise CommandError(f"--backbone-run: no model of this command trains over a SASRec; it is for {stage2}")
    options, per_model = model_options(args, models)
    stage2 = stage2_config(args)
    specs = [
        make_spec(name, options, train, stage2, backbone_run=args.backbone_run, model_options=per_model)
        for name in models
    ]
    data_config(args)  # every option checked before the data is read or anything trains
    data = command_data(args)
    split = leave_one_out(data)
    if args.resume:
        problems = [resume_problem(spec, data, Path(args.out)) for spec in specs]
        if any(problems):
            raise CommandError(next(problem for problem in problems if problem))
    results = [train_model(spec, data, split, Path(args.out), args.resume, args.fresh) for spec in specs]
    if not is_main_process():
        return 0
    print(f"\ntest metrics (full ranking over {split.num_items} items, {len(split.train)} users):")
    print(format_table(results, TRAIN_COLUMNS))
    for result in results:
        print(f"{result['model']}: {result['run_dir']}/results.json")
    return 0


def best_test_ranks(
    run_dir: Path, data: InteractionData, split: Split, runtime: TrainConfig
) -> Tuple[int, torch.Tensor]:
    """The best epoch of a run, finished or not, and its model's test rank of every user's target."""
    model, best_epoch = load_best(run_dir, data, split, runtime.device)
    return best_epoch, model_ranks(model, split, "test", device=runtime.device, batch_size=runtime.eval_batch_size)


def command_evaluate(args: argparse.Namespace) -> int:
    """Test metrics of each run's best checkpoint; an unfinished run is scored as far as it got.

    With ``--versus``, each run is also compared with that run user by user (paired bootstrap).
    """
    try:
        metric = parse_metric(args.metric)
    except ValueError as error:
        raise CommandError(f"--metric: {error}") from None
    set_threads(args)
    runtime = available(TrainConfig(**config_values(args, TrainConfig), progress=False))
    data_config(args)
    run_dirs = [Path(run) for run in args.runs]
    versus = [Path(args.versus)] if args.versus else []
    data = run_data(args, run_description(run_dirs[0]))
    split = leave_one_out(data)
    # Each run is scored once, the --versus run too when it is also listed.
    scored = {
        run_dir: best_test_ranks(run_dir, data, split, runtime) for run_dir in dict.fromkeys([*versus, *run_dirs])
    }
    theirs = per_user_metric(scored[versus[0]][1], *metric).numpy() if versus else None
    results = []
    for run_dir in run_dirs:
        best_epoch, ranks = scored[run_dir]
        result = {
            "model": run_description(run_dir)["model"],
            "run_dir": str(run_dir),
            "finished": is_finished(run_dir),
            "best_epoch": best_epoch,
            "test": ranking_metrics(ranks),
        }
        if theirs is not None:
            ours = per_user_metric(ranks, *metric).numpy()
            result["paired"] = {"versus": args.versus, "metric": args.metric, **paired_bootstrap(ours, theirs)}
        results.append(result)
    print(f"test metrics (full ranking over {split.num_items} items, {len(split.train)} users):")
    print(format_table(results, EVALUATE_COLUMNS))
    for result in results:
        if "paired" in result:
            print(f"{result['run_dir']} against {args.versus}, {args.metric} user by user: "
                  f"{format_paired(result['paired'])}")  # fmt: skip
    if args.json:
        save_json(results, Path(args.json))
        print(f"written to {args.json}")
    return 0


def add_train_command(commands) -> None:
    train = commands.add_parser(
        "train", help="train and evaluate models (default: SASRec and IGR-SR on synthetic data)"
    )
    add_data_options(
        train, "dataset file (.txt, .inter, .csv, .tsv, .parquet, any of them compressed, or a header-less "
        "file with --columns); default: embedded synthetic",
    )  # fmt: skip
    train.add_argument("--model", default=DEFAULT_MODELS, help=f"comma-separated models: {', '.join(sorted(MODELS))}")
    train.add_argument("--out", default="runs", help="directory of run folders")
    train.add_argument("--resume", action="store_true", help="continue interrupted runs from last.pt")
    train.add_argument("--fresh", action="store_true", help="retrain even if a finished run exists")
    train.add_argument(
        "--nproc", type=int, default=None,
        help="data-parallel training processes on this machine (CUDA: one GPU each, NCCL; else gloo on CPU); "
        "the same as `torchrun --nproc-per-node N -m igrsr train ...`",
    )  # fmt: skip
    train.add_argument(
        "--backbone-run", default=None,
        help="IGR-SR, LightRec: a finished SASRec run directory to use as stage 1 (default: the SASRec run "
        "with the same options and training settings, trained first if missing)",
    )  # fmt: skip
    add_training_options(train)
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser(
        "evaluate", help="test metrics of run directories' best checkpoints, finished or not"
    )
    evaluate.add_argument("runs", nargs="+", help="run directories (OUT/<dataset>/<model>-<hash>)")
    add_data_options(evaluate, "the runs' dataset file (default: the file the first run trained on, read as it was)")
    evaluate.add_argument("--json", default=None, help="also write the results to this JSON file")
    evaluate.add_argument(
        "--versus", default=None,
        help="a run directory to compare each run with, user by user (paired bootstrap over the test users)",
    )  # fmt: skip
    evaluate.add_argument("--metric", default="NDCG@10", help="metric of the --versus comparison (HR, NDCG or MRR @K)")
    add_runtime_options(evaluate)
    evaluate.set_defaults(handler=command_evaluate)
