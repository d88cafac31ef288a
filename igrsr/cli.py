"""The ``igrsr`` command line.

``igrsr train`` with no arguments trains SASRec and IGR-SR on the embedded synthetic data
and prints them side by side.  ``igrsr study`` runs the paper's experiments (every model,
noise robustness, ablations, sweeps) and writes a report; ``--quick`` is a small version.
``igrsr evaluate RUN_DIR ...`` scores runs' best checkpoints, an interrupted run's included,
and with ``--versus RUN_DIR`` compares each with another run user by user.  ``igrsr report
STUDY ... --out DIR`` makes one report of several studies, e.g. of seeds run as separate jobs.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from .data import InteractionData, Split, leave_one_out, make_synthetic
from .eval import parse_metric, per_user_metric, ranking_metrics
from .models.lightrec import CODEBOOK_CHOICES, CODEBOOK_STARTS
from .models.registry import MODELS
from .study import (
    ABLATION_NAMES, ALL_MODELS, Study, StudyPlan, first_users, format_paired, main_table, merge_studies,
    paired_bootstrap, run_study, write_report,
)
from .train import TrainConfig, load_data, train_model
from .train.checkpoint import load_json, save_json
from .train.runs import SYNTHETIC, is_finished, load_best, run_description
from .train.trainer import target_ranks_of

DEFAULT_MODELS = "sasrec,igrsr"
# `igrsr study --quick`: a smaller synthetic dataset, one seed and a few epochs.
QUICK_SYNTHETIC = dict(num_users=300, seq_len=(8, 20))
QUICK_EPOCHS = 5
QUICK_SEEDS, FULL_SEEDS = 1, 3
REPORTED_METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--max-len", type=int, default=50, help="history length fed to the model")
    group.add_argument("--d-model", type=int, default=64, help="hidden size d")
    group.add_argument("--num-layers", type=int, default=2, help="transformer (and reasoner) layers")
    group.add_argument("--num-heads", type=int, default=2)
    group.add_argument("--dropout", type=float, default=0.5)
    group.add_argument("--loss", choices=("ce", "bce"), default="ce", help="SASRec loss: full CE or sampled BCE")
    group.add_argument("--num-prefix", type=int, default=4, help="IGR-SR: prefix tokens k")
    group.add_argument("--num-intents", type=int, default=4, help="IGR-SR: intent tokens m")
    group.add_argument("--mask-prob", type=float, default=0.5, help="IGR-SR: intent drop probability per view")
    group.add_argument("--temperature", type=float, default=0.1, help="IGR-SR: InfoNCE temperature")
    group.add_argument("--cl-weight", type=float, default=0.1, help="IGR-SR: InfoNCE weight lambda")
    group.add_argument(
        "--backend", default="auto",
        help="kernel backend: auto, reference, or triton (attention) / cuda, cpu (InfoNCE), the other ops on auto",
    )
    add_model_specific_options(parser)


def add_model_specific_options(parser: argparse.ArgumentParser) -> None:
    """Options of one model each; left unset, the model's own (published) default applies."""
    group = parser.add_argument_group("model-specific (default: the model's own)")
    group.add_argument("--intent-source", choices=("distiller", "free"), help="IGR-SR: LID, or free vectors (ablation)")
    group.add_argument("--fusion", choices=("cross_attention", "concat"), help="IGR-SR: intent fusion (ablation)")
    group.add_argument("--mask-ratio", type=float, help="BERT4Rec: cloze masking probability (0.2)")
    group.add_argument("--sse-user-prob", type=float, help="SSE-PT: probability of swapping the user id (0.92)")
    group.add_argument("--sse-item-prob", type=float, help="SSE-PT: probability of swapping an input item (0.1)")
    group.add_argument("--reasoning-steps", type=int, help="ReaRec: reasoning steps K (2)")
    group.add_argument("--kl-weight", type=float, help="ReaRec-ERL: weight of the KL diversity term (0.05)")
    group.add_argument("--anneal-base", type=float, help="ReaRec-PRL: temperature annealing base (5)")
    group.add_argument("--reasoning-noise", type=float, help="ReaRec-PRL: noise scale of the contrastive view (0.01)")
    group.add_argument("--reasoning-cl-weight", type=float, help="ReaRec-PRL: contrastive loss weight (1)")
    group.add_argument("--num-codebooks", type=int, help="LightRec: codebooks B (4)")
    group.add_argument("--codebook-size", type=int, help="LightRec: codewords per codebook W (256)")
    group.add_argument("--codebook-temperature", type=float, help="LightRec: softmax temperature of the codes (1)")
    group.add_argument(
        "--codebook-choice", choices=CODEBOOK_CHOICES, help="LightRec: how a codeword is scored (bilinear)"
    )
    group.add_argument(
        "--codebook-start", choices=CODEBOOK_STARTS, help="LightRec: codebooks start random or at residual k-means"
    )


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=200, help="epoch limit")
    group.add_argument("--batch-size", type=int, default=None, help="default 256 (128 on the synthetic data)")
    group.add_argument("--lr", type=float, default=None, help="default 1e-3 (3e-3 on the synthetic data)")
    group.add_argument(
        "--stage2-lr", type=float, default=None,
        help="learning rate of IGR-SR's stage 2 over its trained SASRec; default --lr "
        "(1e-3 on the synthetic data)",
    )  # fmt: skip
    group.add_argument(
        "--stage2-epochs", type=int, default=None,
        help="epoch limit of IGR-SR's stage 2 over its trained SASRec; default --epochs",
    )  # fmt: skip
    group.add_argument("--weight-decay", type=float, default=0.0)
    group.add_argument(
        "--patience", type=int, default=None,
        help="epochs without validation NDCG@10 gain before stopping; default 10 (3 on the synthetic data)",
    )  # fmt: skip
    group.add_argument(
        "--every-window", action="store_true",
        help="sequence models (sasrec, bert4rec, ssept, lightrec) train on every max-len window of a long "
        "history, not only its last, so they see every training target as the prefix-trained models do",
    )  # fmt: skip
    group.add_argument("--seed", type=int, default=42)
    add_runtime_options(group)
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_runtime_options(group) -> None:
    """Where and how fast a command computes; none of these change its results."""
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    group.add_argument("--eval-batch-size", type=int, default=None)


def model_option_names() -> Tuple[str, ...]:
    """The destinations of the model options, read off the parser that defines them."""
    parser = argparse.ArgumentParser(add_help=False)
    add_model_options(parser)
    return tuple(action.dest for action in parser._actions)


MODEL_OPTION_NAMES = model_option_names()


def model_options(args: argparse.Namespace) -> Dict:
    return {name: getattr(args, name) for name in MODEL_OPTION_NAMES}


# Training defaults for real data, and for the small embedded synthetic dataset, where a
# larger step and less patience bring both models to convergence within a few CPU minutes.
TRAINING_DEFAULTS = {"lr": 1e-3, "stage2_lr": None, "batch_size": 256, "patience": 10}
SYNTHETIC_TRAINING_DEFAULTS = {"lr": 3e-3, "stage2_lr": 1e-3, "batch_size": 128, "patience": 3}


def uses_synthetic_data(args: argparse.Namespace) -> bool:
    return args.data in (None, SYNTHETIC)


def training_option(args: argparse.Namespace, name: str):
    """The option as given, else the default for the data at hand."""
    value = getattr(args, name)
    if value is not None:
        return value
    return (SYNTHETIC_TRAINING_DEFAULTS if uses_synthetic_data(args) else TRAINING_DEFAULTS)[name]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=training_option(args, "batch_size"),
        lr=training_option(args, "lr"),
        weight_decay=args.weight_decay,
        patience=training_option(args, "patience"),
        seed=args.seed,
        every_window=args.every_window,
        device=resolve_device(args.device),
        eval_batch_size=args.eval_batch_size,
        progress=not args.no_progress,
    )


def stage2_changes(args: argparse.Namespace) -> Dict[str, Any]:
    """The training settings of IGR-SR's stage 2 that differ from its SASRec's.

    The models that take them are those with ``ModelEntry.stage2_settings``."""
    changes = {"lr": training_option(args, "stage2_lr"), "epochs": args.stage2_epochs}
    return {name: value for name, value in changes.items() if value is not None}


def parse_models(text: str, option: str = "--model") -> List[str]:
    names = list(parse_list(text, str, option))
    unknown = [name for name in names if name not in MODELS]
    if not names or unknown:
        problem = f"unknown model(s) {unknown}" if unknown else "no model given"
        raise SystemExit(f"{option}: {problem}; choose from {', '.join(sorted(MODELS))}")
    return names


# Columns after the metrics in the tables the commands print: result key -> header.
TRAIN_COLUMNS = {"best_epoch": "epochs", "seconds_per_epoch": "s/epoch"}
EVALUATE_COLUMNS = {"best_epoch": "best ep", "finished": "finished"}


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
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(args.data)
    print(f"data: {data.name}: {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")
    split = leave_one_out(data)
    config = train_config(args)
    stage2_config = replace(config, **stage2_changes(args))
    results = [
        train_model(
            name, data, split, model_options(args), stage2_config if MODELS[name].stage2_settings else config,
            Path(args.out), args.resume, args.fresh, args.backbone_run, backbone_config=config,
        )  # fmt: skip
        for name in parse_models(args.model)
    ]
    print(f"\ntest metrics (full ranking over {split.num_items} items, {len(split.train)} users):")
    print(format_table(results, TRAIN_COLUMNS))
    for result in results:
        print(f"{result['model']}: {result['run_dir']}/results.json")
    return 0


def best_test_ranks(
    run_dir: Path, data: InteractionData, split: Split, config: TrainConfig
) -> Tuple[int, torch.Tensor]:
    """The best epoch of a run, finished or not, and its model's test rank of every user's target."""
    try:
        model, best_epoch = load_best(run_dir, data, split, config.device)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"igrsr evaluate: {error}") from None
    return best_epoch, target_ranks_of(model, split, "test", config)


def command_evaluate(args: argparse.Namespace) -> int:
    """Test metrics of each run's best checkpoint; an unfinished run is scored as far as it got.

    With ``--versus``, each run is also compared with that run user by user (paired bootstrap).
    """
    try:
        metric = parse_metric(args.metric)
    except ValueError as error:
        raise SystemExit(f"--metric: {error}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(args.data)
    split = leave_one_out(data)
    config = TrainConfig(device=resolve_device(args.device), eval_batch_size=args.eval_batch_size, progress=False)
    run_dirs = [Path(run) for run in args.runs]
    versus = [Path(args.versus)] if args.versus else []
    # Each run is scored once, the --versus run too when it is also listed.
    scored = {run_dir: best_test_ranks(run_dir, data, split, config) for run_dir in dict.fromkeys([*versus, *run_dirs])}
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


def study_data(args: argparse.Namespace) -> InteractionData:
    """The study's dataset: the file given, else the synthetic one (smaller with ``--quick``)."""
    if args.data is None and args.quick:
        data = make_synthetic(**QUICK_SYNTHETIC)
    else:
        data = load_data(args.data)
    return first_users(data, args.users) if args.users else data


def parse_list(text: str, kind: type, option: str) -> Tuple:
    """``"1,2,3"`` as a tuple of ``kind``; an empty string is the empty tuple (skip that part)."""
    try:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise SystemExit(f"{option}: expected comma-separated {kind.__name__} values, got {text!r}") from None


def study_plan(args: argparse.Namespace) -> StudyPlan:
    """The default (or ``--quick``) plan with the parts the command line chose instead."""
    models = tuple(parse_models(args.models, "--models"))
    plan = StudyPlan.quick(models) if args.quick else StudyPlan(models=models, noise_models=models)
    changes: Dict[str, Any] = {}
    if args.ablations is not None:
        names = parse_list(args.ablations, str, "--ablations")
        unknown = [name for name in names if name not in ABLATION_NAMES]
        if unknown:
            raise SystemExit(f"--ablations: unknown {unknown}; choose from {', '.join(ABLATION_NAMES)}")
        # Each ablation is read against the full model, which is the main table's run.
        changes["ablations"] = ("IGR-SR", *(ABLATION_NAMES[name] for name in names)) if names else ()
    if args.noise is not None:
        fractions = parse_list(args.noise, float, "--noise")
        if any(not 0 <= fraction < 1 for fraction in fractions):
            raise SystemExit(f"--noise: fractions must be in [0, 1), got {args.noise!r}")
        # The clean run is what every drop is measured from; an empty list skips the part.
        changes["noise_fractions"] = tuple(sorted({0.0, *fractions})) if fractions else ()
    if args.noise_models is not None:
        changes["noise_models"] = tuple(parse_models(args.noise_models, "--noise-models")) if args.noise_models else ()
    if args.intents is not None:
        changes["intent_counts"] = parse_list(args.intents, int, "--intents")
    if args.prefixes is not None:
        changes["prefix_counts"] = parse_list(args.prefixes, int, "--prefixes")
    if args.tune_lr is not None:
        rates = parse_list(args.tune_lr, float, "--tune-lr")
        if any(not rate > 0 for rate in rates):
            raise SystemExit(f"--tune-lr: learning rates must be > 0, got {args.tune_lr!r}")
        changes["learning_rates"] = tuple(sorted(set(rates)))
    return replace(plan, **changes)


def command_study(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = study_plan(args)  # before the data: a bad option fails at once
    data = study_data(args)
    print(f"data: {data.name}: {data.num_users} users, {data.num_items} items, {data.num_interactions} interactions")
    if args.epochs is None:
        args.epochs = QUICK_EPOCHS if args.quick else TrainConfig.epochs
    num_seeds = args.seeds or (QUICK_SEEDS if args.quick else FULL_SEEDS)
    out = Path(args.out)
    seeds = list(range(args.seed, args.seed + num_seeds))
    study = Study(
        data, model_options(args), train_config(args), seeds, out, plan, args.noise_seed,
        stage2_changes=stage2_changes(args),
    )  # fmt: skip
    raw = run_study(study)
    print("\n".join(["", *main_table(raw), ""]))
    print(f"study: {len(raw['records'])} runs; report {out / 'report.md'}, raw results {out / 'study.json'}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    """One report of several studies' runs (e.g. one seed per job), written like a study's."""
    studies = {}
    for name in args.studies:
        path = Path(name) / "study.json" if Path(name).is_dir() else Path(name)
        if not path.is_file():
            raise SystemExit(f"igrsr report: {name} is neither a study directory nor a study.json")
        studies[name] = load_json(path)
    models = parse_models(args.models, "--models") if args.models is not None else None
    try:
        raw = merge_studies(studies, models, keep_first=args.keep_first)
    except ValueError as error:
        raise SystemExit(f"igrsr report: {error}") from None
    out = Path(args.out)
    save_json(raw, out / "study.json")
    write_report(raw, out)
    print("\n".join(["", *main_table(raw), ""]))
    print(f"report of {len(raw['records'])} runs, seeds {raw['seeds']}: {out / 'report.md'}, "
          f"raw results {out / 'study.json'}")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igrsr", description="Intent-guided sequential recommendation")
    commands = parser.add_subparsers(dest="command")
    train = commands.add_parser(
        "train", help="train and evaluate models (default: SASRec and IGR-SR on synthetic data)"
    )
    train.add_argument(
        "--data", default=None, help="dataset file (.txt, .inter, .csv, .tsv); default: embedded synthetic"
    )
    train.add_argument("--model", default=DEFAULT_MODELS, help=f"comma-separated models: {', '.join(sorted(MODELS))}")
    train.add_argument("--out", default="runs", help="directory of run folders")
    train.add_argument("--resume", action="store_true", help="continue interrupted runs from last.pt")
    train.add_argument("--fresh", action="store_true", help="retrain even if a finished run exists")
    train.add_argument(
        "--backbone-run", default=None,
        help="IGR-SR: a finished SASRec run directory to use as stage 1 (default: the SASRec run "
        "with the same options and training settings, trained first if missing)",
    )  # fmt: skip
    add_model_options(train)
    add_training_options(train)
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser(
        "evaluate", help="test metrics of run directories' best checkpoints, finished or not"
    )
    evaluate.add_argument("runs", nargs="+", help="run directories (OUT/<dataset>/<model>-<hash>)")
    evaluate.add_argument("--data", default=None, help="the runs' dataset file; default: embedded synthetic")
    evaluate.add_argument("--json", default=None, help="also write the results to this JSON file")
    evaluate.add_argument(
        "--versus", default=None,
        help="a run directory to compare each run with, user by user (paired bootstrap over the test users)",
    )  # fmt: skip
    evaluate.add_argument("--metric", default="NDCG@10", help="metric of the --versus comparison (HR, NDCG or MRR @K)")
    add_runtime_options(evaluate)
    evaluate.set_defaults(handler=command_evaluate)

    study = commands.add_parser(
        "study", help="the paper's experiments: main table, noise robustness, ablations, m/k sweeps"
    )
    study.add_argument("--data", default=None, help="dataset file; default: embedded synthetic")
    study.add_argument("--out", default="study", help="directory of the report, raw results and runs")
    study.add_argument("--quick", action="store_true", help="small version: 1 seed, few epochs, fewer sweep points")
    study.add_argument(
        "--seeds", type=int, default=None, help=f"seeds per run (default {FULL_SEEDS}, quick {QUICK_SEEDS})"
    )
    study.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated models of the main table")
    study.add_argument("--users", type=int, default=None, help="keep only the first N users of the data")
    study.add_argument("--noise-seed", type=int, default=0, help="seed of the noisy-input datasets")
    parts = study.add_argument_group("parts of the plan (default: all of it; an empty list skips a part)")
    parts.add_argument("--noise", default=None, help="noise fractions (default 0,0.1,0.2,0.3; quick 0,0.2)")
    parts.add_argument("--noise-models", default=None, help="models of the noise experiment (default --models)")
    parts.add_argument(
        "--ablations", default=None,
        help=f"IGR-SR ablations to run, of {','.join(ABLATION_NAMES)} (default all)",
    )  # fmt: skip
    parts.add_argument("--intents", default=None, help="values of the m sweep (default 1,2,3,4,5,6; quick 1,4)")
    parts.add_argument("--prefixes", default=None, help="values of the k sweep (default 0,2,4,8,16; quick 0,4)")
    parts.add_argument(
        "--tune-lr", default=None,
        help="learning rates each model chooses from on validation NDCG@10 (first seed) before every other "
        "run, IGR-SR's stage 2 included (default none: every model trains with --lr / --stage2-lr)",
    )  # fmt: skip
    add_model_options(study)
    add_training_options(study)
    # Unset, the epoch limit depends on --quick.
    study.set_defaults(handler=command_study, epochs=None)

    report = commands.add_parser(
        "report", help="one report (tables over all seeds) of several studies, e.g. one seed per job"
    )
    report.add_argument(
        "studies", nargs="+", help="study directories (or their study.json) of the same data and settings"
    )
    report.add_argument("--out", required=True, help="directory of the merged report and study.json")
    report.add_argument("--models", default=None, help="comma-separated models to keep (default: every model)")
    report.add_argument(
        "--keep-first", action="store_true",
        help="a seed recorded by two studies with other results (retrained): keep the first study's, not refuse",
    )  # fmt: skip
    report.set_defaults(handler=command_report)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
