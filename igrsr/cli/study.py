"""``igrsr study`` and ``igrsr report``."""

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict

from ..data import InteractionData
from ..study import ABLATION_NAMES, ALL_MODELS, Study, StudyPlan, first_users, main_table, merge_studies, run_study
from ..study.plan import check_plan
from ..study.report import write_report
from ..study.results_page import write_results
from ..train.checkpoint import load_versioned, save_json
from ..train.config import MAX_SEED
from .data import add_data_options, command_data, data_config
from .options import CommandError, model_options
from .train import add_training_options, parse_list, parse_models, set_threads, stage2_config, train_config

# `igrsr study --quick`: a smaller synthetic dataset, one seed and a few epochs.
QUICK_SYNTHETIC = dict(num_users=300, seq_len=(8, 20))
QUICK_EPOCHS = 5
QUICK_SEEDS, FULL_SEEDS = 1, 3


def study_data(args: argparse.Namespace) -> InteractionData:
    """The study's dataset: the file given, else the synthetic one (smaller with ``--quick``)."""
    data = command_data(args, QUICK_SYNTHETIC if args.data is None and args.quick else {})
    return first_users(data, args.users) if args.users is not None else data


def study_plan(args: argparse.Namespace) -> StudyPlan:
    """The default (or ``--quick``) plan with the parts the command line chose instead."""
    models = tuple(parse_models(args.models, "--models"))
    plan = StudyPlan.quick(models) if args.quick else StudyPlan(models=models, noise_models=models)
    changes: Dict[str, Any] = {}
    if args.ablations is not None:
        names = parse_list(args.ablations, str, "--ablations")
        unknown = [name for name in names if name not in ABLATION_NAMES]
        if unknown:
            raise CommandError(f"--ablations: unknown {unknown}; choose from {', '.join(ABLATION_NAMES)}")
        # Each ablation is read against the full model, which is the main table's run.
        changes["ablations"] = ("IGR-SR", *(ABLATION_NAMES[name] for name in names)) if names else ()
    if args.noise is not None:
        fractions = parse_list(args.noise, float, "--noise")
        if any(not 0 <= fraction < 1 for fraction in fractions):
            raise CommandError(f"--noise: fractions must be in [0, 1), got {args.noise!r}")
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
            raise CommandError(f"--tune-lr: learning rates must be > 0, got {args.tune_lr!r}")
        changes["learning_rates"] = tuple(sorted(set(rates)))
    return replace(plan, **changes)


def command_study(args: argparse.Namespace) -> int:
    set_threads(args)
    for option in ("seeds", "users"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise CommandError(f"--{option} must be >= 1, got {getattr(args, option)}")
    if not 0 <= args.noise_seed <= MAX_SEED:
        raise CommandError(f"--noise-seed must be in [0, {MAX_SEED}], got {args.noise_seed}")
    plan = study_plan(args)
    if args.epochs is None and args.quick:
        args.epochs = QUICK_EPOCHS
    config, stage2 = train_config(args), stage2_config(args)
    options, per_model = model_options(args, [*plan.models, *plan.noise_models])
    if per_model:
        raise CommandError(f"igrsr study takes model options for every model; a config file's model_options "
                           f"({', '.join(per_model)}) would make its table cells differ from each other")  # fmt: skip
    num_seeds = args.seeds or (QUICK_SEEDS if args.quick else FULL_SEEDS)
    seeds = list(range(config.seed, config.seed + num_seeds))
    check_plan(plan, options, config, stage2, seeds)
    data_config(args)
    data = study_data(args)  # after every option is checked: a bad one fails at once
    out = Path(args.out)
    study = Study(data, options, config, seeds, out, plan, args.noise_seed, stage2)
    raw = run_study(study)
    print("\n".join(["", *main_table(raw), ""]))
    print(f"study: {len(raw['records'])} runs; report {out / 'report.md'}, raw results {out / 'study.json'}")
    return 0


def read_study(name: str) -> Dict[str, Any]:
    path = Path(name) / "study.json" if Path(name).is_dir() else Path(name)
    if not path.is_file():
        raise CommandError(f"{name} is neither a study directory nor a study.json")
    return load_versioned(path)


def parse_take(entries) -> Dict[str, Any]:
    """``--take STUDY:MODELS`` entries as ``{STUDY: [models]}``."""
    taken = {}
    for entry in entries or ():
        study, separator, models = entry.rpartition(":")
        if not separator or not study:
            raise CommandError(f"--take: expected STUDY:MODEL,MODEL, got {entry!r}")
        taken[study] = parse_models(models, "--take")
    return taken


def command_report(args: argparse.Namespace) -> int:
    """One report of several studies' runs (e.g. one seed per job), written like a study's; or,
    with ``--results``, every dataset's merged report and the results page of a manifest."""
    if args.results is not None:
        if args.studies or args.out:
            raise CommandError("--results takes its studies and outputs from the manifest: give no STUDY or --out")
        for line in write_results(Path(args.results)):
            print(line)
        return 0
    if not args.studies or not args.out:
        raise CommandError("give the studies to merge and --out DIR (or --results MANIFEST)")
    take = parse_take(args.take)
    missing = [study for study in take if study not in args.studies]
    if missing:
        raise CommandError(f"--take names {missing[0]}, which is not one of the studies given")
    studies = {name: read_study(name) for name in args.studies}
    models = parse_models(args.models, "--models") if args.models is not None else None
    raw = merge_studies(studies, models, keep_first=args.keep_first, only=take)
    out = Path(args.out)
    save_json(raw, out / "study.json")
    write_report(raw, out)
    print("\n".join(["", *main_table(raw), ""]))
    print(f"report of {len(raw['records'])} runs, seeds {raw['seeds']}: {out / 'report.md'}, "
          f"raw results {out / 'study.json'}")  # fmt: skip
    return 0


def add_study_commands(commands) -> None:
    study = commands.add_parser(
        "study", help="the paper's experiments: main table, noise robustness, ablations, m/k sweeps"
    )
    add_data_options(study, "dataset file (as for igrsr train); default: embedded synthetic")
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
        "--ablations", default=None, help=f"IGR-SR ablations to run, of {','.join(ABLATION_NAMES)} (default all)"
    )
    parts.add_argument("--intents", default=None, help="values of the m sweep (default 1,2,3,4,5,6; quick 1,4)")
    parts.add_argument("--prefixes", default=None, help="values of the k sweep (default 0,2,4,8,16; quick 0,4)")
    parts.add_argument(
        "--tune-lr", default=None,
        help="learning rates each model chooses from on validation NDCG@10 (first seed) before every other "
        "run, IGR-SR's stage 2 included (default none: every model trains with --lr / --stage2-lr)",
    )  # fmt: skip
    add_training_options(study)
    study.set_defaults(handler=command_study)

    report = commands.add_parser(
        "report", help="one report (tables over all seeds) of several studies, or the results page"
    )
    report.add_argument(
        "studies", nargs="*", help="study directories (or their study.json) of the same data and settings"
    )
    report.add_argument("--out", default=None, help="directory of the merged report and study.json")
    report.add_argument("--models", default=None, help="comma-separated models to keep (default: every model)")
    report.add_argument(
        "--take", action="append", metavar="STUDY:MODELS",
        help="keep only these models' runs of one of the studies (repeatable), e.g. a model retrained elsewhere",
    )  # fmt: skip
    report.add_argument(
        "--keep-first", action="store_true",
        help="a seed recorded by two studies with other results (retrained): keep the first study's, not refuse",
    )  # fmt: skip
    report.add_argument(
        "--results", default=None, metavar="MANIFEST",
        help="a results manifest (reports/results.yaml): merge each dataset's studies as it lists and write the page",
    )  # fmt: skip
    report.set_defaults(handler=command_report)
