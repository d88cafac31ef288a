"""The paper's experiments in one call: main table, noise robustness, ablations and sweeps.

Every run goes through :func:`igrsr.train.train_model`, so a finished run is reused and an
interrupted one continues from its last checkpoint: calling the study again resumes it.
Runs live in ``OUT/runs``; the study writes ``OUT/study.json`` (every run's metrics, and the
aggregated tables; rewritten after each run), ``OUT/report.md``, ``OUT/noise.png`` and
``OUT/sweeps.png``.

Protocol: each table cell is the test metric's mean ± standard deviation over the seeds;
every model trains with the same options, budget and early stopping on validation NDCG@10.
With learning rates to choose from (``StudyPlan.learning_rates``), each learned model first
trains once per rate (first seed) and keeps, for every run after, the one with the best
validation NDCG@10.  The sweeps and the noise curves are reported on the test set, as in the
paper; nothing here selects hyperparameters on them.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from .data import InteractionData, Split, inject_noise, leave_one_out
from .eval import parse_metric, per_user_metric
from .models.registry import BACKBONE, MODELS, options_for
from .train import TrainConfig, train_model
from .train.checkpoint import save_json
from .train.plots import plot_noise_robustness, plot_sweeps
from .train.runs import NOT_IN_RUN_KEY, data_summary, per_user_test_ranks, run_description, run_settings

ALL_MODELS = ("pop", "sasrec", "bert4rec", "ssept", "lightrec", "rearec-erl", "rearec-prl", "igrsr")
TABLE_METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")
HEADLINE = "NDCG@10"
# IGR-SR option changes that remove one component each (the paper's ablation study).
ABLATIONS = {
    "IGR-SR": {},
    "w/o LID": {"intent_source": "free"},
    "w/o cross-attention": {"fusion": "concat"},
    "w/o ICR": {"cl_weight": 0.0},
}
# The command line's names of the ablations (``--ablations lid,icr``).
ABLATION_NAMES = {"lid": "w/o LID", "cross-attention": "w/o cross-attention", "icr": "w/o ICR"}
# What the study keeps of each run's results.json (the rest stays in the run directory).
RECORDED_RESULTS = ("run_dir", "test", "valid", "best_epoch", "epochs_run", "stopped", "train_seconds")
# The swept IGR-SR options and how the report names them.
SWEPT_OPTIONS = {"num_intents": "m (intent tokens)", "num_prefix": "k (prefix tokens)"}
QUICK_NOTE = [
    "**Quick plan**: one seed, a few epochs and fewer noise levels and sweep points. It checks",
    "the pipeline end to end; its numbers are not results to compare models by.",
    "",
]


@dataclass(frozen=True)
class StudyPlan:
    """What the study trains; every entry is run once per seed."""

    name: str = "full"
    models: Tuple[str, ...] = ALL_MODELS
    noise_fractions: Tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    noise_models: Tuple[str, ...] = ALL_MODELS
    intent_counts: Tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    prefix_counts: Tuple[int, ...] = (0, 2, 4, 8, 16)
    ablations: Tuple[str, ...] = tuple(ABLATIONS)  # labels of ABLATIONS; the full model first
    # Chosen from per model on validation before everything else; empty: every model uses --lr.
    learning_rates: Tuple[float, ...] = ()

    @classmethod
    def quick(cls, models: Tuple[str, ...] = ALL_MODELS) -> "StudyPlan":
        """Every table, fewer points: 20% noise on SASRec and IGR-SR, two values per sweep."""
        noise_models = tuple(name for name in (BACKBONE, "igrsr") if name in models)
        return cls("quick", models, (0.0, 0.2), noise_models, (1, 4), (0, 4))

    def sweeps(self) -> Dict[str, Tuple[int, ...]]:
        return {"num_intents": self.intent_counts, "num_prefix": self.prefix_counts}


def with_noisy_inputs(data: InteractionData, fraction: float, seed: int) -> InteractionData:
    """A copy of ``data`` whose model inputs are noised and whose evaluation targets are not.

    A user's items before the last two are the training sequence (its items are training
    inputs and targets alike, as in the paper) and the validation history; ``fraction`` of
    them are replaced by uniformly random items (:func:`igrsr.data.inject_noise`).  The last
    two items, the validation and test targets, stay; so the test history is the noisy
    training part followed by the validation target.  Users too short to split are kept.
    The copy has its own fingerprint, so its runs get their own run directories.
    """
    heads = inject_noise([sequence[:-2] for sequence in data.sequences], fraction, data.num_items, seed)
    sequences = [
        np.concatenate([head, sequence[-2:]]) if len(sequence) >= 3 else sequence
        for head, sequence in zip(heads, data.sequences)
    ]
    return replace(data, sequences=sequences, name=f"{data.name}-noise{round(100 * fraction)}")


def first_users(data: InteractionData, count: int) -> InteractionData:
    """``data`` restricted to its first ``count`` users (a smaller study; its own fingerprint)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return replace(data, sequences=data.sequences[:count], user_ids=data.user_ids[:count])


def training_configs(
    config: TrainConfig, model: str, seed: int, stage2_changes: Dict[str, Any], chosen_lr: Dict[str, float],
    lr: Optional[float] = None,
) -> Tuple[TrainConfig, TrainConfig]:  # fmt: skip
    """``model``'s training settings at ``seed`` (``lr``, else its chosen one, else ``config``'s)
    and those of the SASRec a stage-2 model trains over (SASRec's chosen lr)."""
    backbone = replace(config, seed=seed, lr=chosen_lr.get(BACKBONE, config.lr))
    config = replace(config, seed=seed)
    if MODELS[model].stage2_settings:
        config = replace(config, **stage2_changes)
    if not MODELS[model].learned:
        # Popularity is counted in one pass; more epochs would only repeat the count.
        config = replace(config, epochs=1)
    chosen = chosen_lr.get(model, config.lr)
    return replace(config, lr=chosen if lr is None else lr), backbone


@dataclass
class Study:
    """Runs of one dataset, with the options and training settings every run starts from."""

    data: InteractionData
    options: Dict[str, Any]
    config: TrainConfig
    seeds: Sequence[int]
    out: Path
    plan: StudyPlan = StudyPlan()
    noise_seed: int = 0
    # Training settings of IGR-SR over its SASRec that differ from ``config`` (lr, epochs).
    stage2_changes: Dict[str, Any] = field(default_factory=dict)
    records: List[Dict[str, Any]] = field(default_factory=list, init=False)
    # ``{model: learning rate}`` chosen on validation (``tune_learning_rates``).
    chosen_lr: Dict[str, float] = field(default_factory=dict, init=False)
    paired: List[Dict[str, Any]] = field(default_factory=list, init=False)
    _variants: Dict[float, Tuple[InteractionData, Split]] = field(default_factory=dict, init=False, repr=False)

    def variant(self, noise: float) -> Tuple[InteractionData, Split]:
        """The data with ``noise`` of its inputs replaced, and its split (built once)."""
        if noise not in self._variants:
            data = self.data if noise == 0 else with_noisy_inputs(self.data, noise, self.noise_seed)
            self._variants[noise] = data, leave_one_out(data)
        return self._variants[noise]

    def run(
        self, experiment: str, label: str, model: str, overrides: Optional[Dict] = None, noise: float = 0.0,
        lr: Optional[float] = None, seeds: Optional[Sequence[int]] = None,
    ) -> List[Dict[str, Any]]:  # fmt: skip
        """Train (or reuse) ``model`` once per seed (default: the study's) and record each run
        under ``experiment``/``label``; returns the new records."""
        overrides = overrides or {}
        data, split = self.variant(noise)
        added = []
        for seed in self.seeds if seeds is None else seeds:
            config, backbone_config = training_configs(
                self.config, model, seed, self.stage2_changes, self.chosen_lr, lr
            )
            print(f"[study] {experiment}: {label} (noise {noise:g}, seed {seed}, lr {config.lr:g})", flush=True)
            result = train_model(
                model, data, split, {**self.options, **overrides}, config, self.out / "runs",
                resume=True, backbone_config=backbone_config,
            )  # fmt: skip
            where = {"experiment": experiment, "label": label, "model": model, "overrides": overrides}
            recorded = {key: result[key] for key in RECORDED_RESULTS}
            recorded["revision"] = result.get("revision", 1)  # a run without one predates revisions
            added.append({**where, "noise": noise, "seed": seed, "lr": config.lr, **recorded})
            self.records.append(added[-1])
            self.save(complete=False)
        return added

    def paired_comparisons(self, model: str = "igrsr", metric: str = HEADLINE) -> List[Dict[str, Any]]:
        """``model`` against every other main-table model and every ablation, user by user.

        On the test set, with the first seed's runs; each run's per-user test ranks are
        computed once and cached in its directory.  Seeds measure training variance, this the
        evaluation's: together they say whether a difference of a few percent means anything.
        """
        seed = self.seeds[0]
        runs = {
            record["label"]: Path(record["run_dir"])
            for record in self.records
            if record["experiment"] in ("main", "ablation") and record["seed"] == seed and record["label"] != "IGR-SR"
        }  # the ablation table's "IGR-SR" is the main table's igrsr run
        if model not in runs:
            return []
        data, split = self.variant(0.0)
        name, k = parse_metric(metric)
        values = {
            label: per_user_metric(per_user_test_ranks(run_dir, data, split, self.config.device), name, k).numpy()
            for label, run_dir in runs.items()
        }
        return [
            {
                "model": model, "versus": label, "metric": metric, "seed": seed,
                **paired_bootstrap(values[model], values[label]),
            }
            for label in runs
            if label != model
        ]

    def save(self, complete: bool) -> Dict[str, Any]:
        raw = {
            "complete": complete,
            "plan": asdict(self.plan),
            "data": data_summary(self.data),
            "seeds": list(self.seeds),
            "noise_seed": self.noise_seed,
            "options": self.options,
            "train": asdict(self.config),
            "stage2_changes": self.stage2_changes,
            "learning_rates": self.chosen_lr,
            "records": self.records,
            "paired": self.paired,
            "summary": summarize(self.records),
        }
        save_json(raw, self.out / "study.json")
        return raw


def tune_learning_rates(study: Study) -> None:
    """Choose each learned model's learning rate from the plan's on validation NDCG@10.

    Every model of the study (and SASRec, under a stage-2 model) trains once per rate with
    the first seed; the rate of the best validation score (the first of equal ones) is
    ``study.chosen_lr[model]`` for every later run.  SASRec goes first: a stage-2 model is
    tuned over the SASRec of SASRec's chosen rate.  The chosen rate's run is the main
    table's first-seed run, which is then reused.
    """
    models = dict.fromkeys([*study.plan.models, *study.plan.noise_models])
    if any(MODELS[model].needs_backbone for model in models):
        models = {BACKBONE: None, **models}
    for model in sorted(models, key=lambda name: MODELS[name].needs_backbone):
        if not MODELS[model].learned:
            continue
        scores = {}
        for lr in study.plan.learning_rates:
            (record,) = study.run("tuning", f"{model} lr {lr:g}", model, lr=lr, seeds=study.seeds[:1])
            scores[lr] = record["valid"][HEADLINE]
        study.chosen_lr[model] = max(scores, key=scores.get)


def run_study(study: Study) -> Dict[str, Any]:
    """Run every experiment of the study's plan, then write the JSON, the report and the figures."""
    plan = study.plan
    if plan.learning_rates:
        tune_learning_rates(study)
    for model in plan.models:
        study.run("main", model, model)
    for fraction in plan.noise_fractions:
        for model in plan.noise_models:
            study.run("noise", model, model, noise=fraction)
    if "igrsr" in plan.models:
        for label in plan.ablations:
            study.run("ablation", label, "igrsr", ABLATIONS[label])
        for option, values in plan.sweeps().items():
            for value in values:
                study.run(f"sweep-{option}", str(value), "igrsr", {option: value})
    study.paired = study.paired_comparisons()
    raw = study.save(complete=True)
    write_report(raw, study.out)
    return raw


def merge_studies(
    studies: Dict[str, Dict[str, Any]], models: Optional[Sequence[str]] = None, keep_first: bool = False
) -> Dict[str, Any]:
    """One study of the runs of several (``{name: study.json contents}``), e.g. of seeds trained
    as separate jobs (``--seed N --seeds 1`` each): each table cell is then over all its seeds.

    The studies must share their data and study-wide settings (training but the seed, stage-2
    changes, chosen learning rates, noise seed, plan); the runs of one cell must share every
    setting but the seed, model options and revision included (a LightRec with other codebook
    options is another model, not another seed).  A seed recorded twice in a cell is kept once
    if both records have the same test metrics (a run two studies reused) and refused otherwise,
    unless ``keep_first`` (a run retrained elsewhere, where floating point may differ a little):
    then the first study's is kept and the others listed under ``"replaced_by_first"``.
    ``models``: keep only those models' runs.  The paired comparisons are the lowest seed's.
    """
    if not studies:
        raise ValueError("no study to merge")
    (first_name, first), *others = studies.items()
    for name, raw in others:
        _refuse_differences(study_settings(first), study_settings(raw), f"{name} differs from {first_name} in")
    records: List[Dict[str, Any]] = []
    dropped: List[str] = []
    cells: Dict[Tuple, Tuple[str, Dict[str, Any], Dict[int, Dict[str, Any]]]] = {}
    for name, raw in studies.items():
        for record in raw["records"]:
            if models is not None and record["model"] not in models:
                continue
            cell = (record["experiment"], record["label"], record["noise"])
            where = f"{record['label']} ({record['experiment']}, noise {record['noise']:g})"
            settings = record_settings(raw, record, name)
            source, expected, seeds = cells.setdefault(cell, (name, settings, {}))
            _refuse_differences(expected, settings, f"{where} of {name} trained with other settings than in {source}:")
            seen = seeds.get(record["seed"])
            if seen is not None:
                if seen["test"] != record["test"]:
                    if not keep_first:
                        raise ValueError(
                            f"{where}: seed {record['seed']} has other test results in {name} than before "
                            "(a retrained run? keep the first study's with keep_first / --keep-first)"
                        )
                    dropped.append(f"{where}, seed {record['seed']}, of {name}")
                continue
            seeds[record["seed"]] = record
            records.append(record)
    if not records:
        raise ValueError(f"no run of the models {list(models or [])} in the studies")
    seeds = sorted({record["seed"] for record in records})
    return {
        **first,
        "complete": all(raw["complete"] for raw in studies.values()),
        "merged_from": list(studies),
        "replaced_by_first": dropped,
        "seeds": seeds,
        "train": {**first["train"], "seed": seeds[0]},
        "records": records,
        "paired": lowest_seed_comparisons(studies.values(), {record["label"] for record in records}),
        "summary": summarize(records),
    }


def lowest_seed_comparisons(studies: Iterable[Dict[str, Any]], labels: Set[str]) -> List[Dict[str, Any]]:
    """The paired comparisons between ``labels`` of the lowest seed that has any, once each."""
    rows = [row for raw in studies for row in raw.get("paired", []) if {row["model"], row["versus"]} <= labels]
    lowest = min((row["seed"] for row in rows), default=None)
    kept: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        if row["seed"] == lowest:
            kept.setdefault(row["versus"], row)
    return list(kept.values())


def study_settings(raw: Dict[str, Any]) -> Dict[str, Any]:
    """What every run of a study shares, the seed aside."""
    training = asdict(TrainConfig(**raw["train"]))
    return {
        "data": raw["data"]["fingerprint"],
        "plan": raw["plan"]["name"],
        "train": {name: value for name, value in training.items() if name not in (*NOT_IN_RUN_KEY, "seed")},
        "stage2_changes": raw.get("stage2_changes") or {},
        "learning_rates": raw.get("learning_rates") or {},
        "noise_seed": raw["noise_seed"],
    }


def record_settings(raw: Dict[str, Any], record: Dict[str, Any], study: str) -> Dict[str, Any]:
    """What one run of the study named ``study`` trained, as its run directory's key has it, the
    seed aside."""
    model, entry = record["model"], MODELS[record["model"]]
    options = {**raw["options"], **record["overrides"]}
    stage2_changes, chosen_lr = raw.get("stage2_changes") or {}, raw.get("learning_rates") or {}
    # A record without its lr predates learning-rate tuning: it trained with the study's rates.
    train = TrainConfig(**raw["train"])
    config, backbone = training_configs(train, model, 0, stage2_changes, chosen_lr, record.get("lr"))
    settings = run_settings(model, options_for(entry.cls, options), config)
    # Only an older record lacks it; its run directory is read then, not for every record.
    settings["revision"] = record["revision"] if "revision" in record else recorded_revision(record, study)
    if entry.needs_backbone:
        settings["backbone"] = run_settings(BACKBONE, options_for(MODELS[BACKBONE].cls, options), backbone)
    return settings


def recorded_revision(record: Dict[str, Any], study: str):
    """The model revision of a record from before records kept it: its run directory's, if the
    run is still there; 1 for a model never revised; else unknown (two studies' may differ)."""
    if MODELS[record["model"]].revision == 1:
        return 1
    try:
        return run_description(Path(record["run_dir"])).get("revision", 1)  # a run without one predates revisions
    except FileNotFoundError:
        return f"unknown in {study}"


def _refuse_differences(expected: Dict[str, Any], found: Dict[str, Any], context: str) -> None:
    differences = [
        f"{name} {found_value!r} instead of {expected_value!r}"
        for name, (expected_value, found_value) in _flat_pairs(expected, found).items()
        if expected_value != found_value
    ]
    if differences:
        raise ValueError(f"{context} {'; '.join(differences)}")


def _flat_pairs(expected: Dict[str, Any], found: Dict[str, Any], prefix: str = "") -> Dict[str, Tuple[Any, Any]]:
    """``{"train.lr": (expected, found), ...}`` over the keys of two nested dicts (None: missing)."""
    pairs = {}
    for name in dict.fromkeys([*expected, *found]):
        a, b = expected.get(name), found.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            pairs.update(_flat_pairs(a, b, f"{prefix}{name}."))
        else:
            pairs[f"{prefix}{name}"] = (a, b)
    return pairs


def paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, resamples: int = 2000, seed: int = 0) -> Dict[str, Any]:
    """Relative difference of the means of two per-user metrics, with a 95% bootstrap interval.

    Users are resampled with replacement, the same users for both sides (a paired test):
    the interval is what the choice of test users alone could change.  Percent; NaN where
    ``theirs`` has a zero mean.  A resample whose ``theirs`` is all zero has no relative
    difference: the interval is over the others, and ``undefined_resamples`` counts them.
    """
    if ours.shape != theirs.shape or ours.ndim != 1 or len(ours) == 0:
        raise ValueError(f"expected two equal non-empty 1-d arrays, got shapes {ours.shape} and {theirs.shape}")
    rng = np.random.default_rng(seed)

    def gain(users) -> float:
        return percent_change(ours[users].sum(), theirs[users].sum())

    draws = np.array([gain(rng.integers(0, len(ours), len(ours))) for _ in range(resamples)])
    defined = draws[~np.isnan(draws)]
    low, high = np.percentile(defined, [2.5, 97.5]) if len(defined) else (float("nan"), float("nan"))
    return {"gain_percent": gain(slice(None)), "ci95_percent": [float(low), float(high)], "users": len(ours),
            "resamples": resamples, "undefined_resamples": resamples - len(defined)}  # fmt: skip


def summarize(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Mean and standard deviation over seeds of every (experiment, label, noise) group."""
    groups: Dict[Tuple, List[Dict]] = {}
    for record in records:
        groups.setdefault((record["experiment"], record["label"], record["noise"]), []).append(record)
    rows = []
    for (experiment, label, noise), members in groups.items():
        rows.append(
            {
                "experiment": experiment,
                "label": label,
                "model": members[0]["model"],
                "noise": noise,
                "seeds": [member["seed"] for member in members],
                "test_mean": {k: float(np.mean([m["test"][k] for m in members])) for k in TABLE_METRICS},
                "test_std": {k: _std([m["test"][k] for m in members]) for k in TABLE_METRICS},
                "valid_mean": {k: float(np.mean([m["valid"][k] for m in members])) for k in TABLE_METRICS},
                # "best/run epochs, why it stopped" per seed: a run cut by the epoch limit shows.
                "epochs": [f"{m['best_epoch']}/{m['epochs_run']} {m['stopped']}" for m in members],
                "train_minutes": float(np.mean([m["train_seconds"] for m in members]) / 60),
            }
        )
    return rows


def _std(values: List[float]) -> float:
    """Sample standard deviation; 0 for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _rows(raw: Dict, experiment: str) -> List[Dict]:
    return [row for row in raw["summary"] if row["experiment"] == experiment]


def _cell(row: Dict, metric: str) -> str:
    return f"{row['test_mean'][metric]:.4f} ± {row['test_std'][metric]:.4f}"


def _table(header: Sequence[str], lines: List[Sequence[str]]) -> List[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(line) + " |" for line in lines),
    ]


def main_table(raw: Dict) -> List[str]:
    rows = _rows(raw, "main")
    header = ["model", "seeds", *TABLE_METRICS, "epochs (best/run, stop)", "train min"]
    lines = [
        [row["label"], str(len(row["seeds"])), *(_cell(row, k) for k in TABLE_METRICS), ", ".join(row["epochs"]),
         f"{row['train_minutes']:.1f}"]
        for row in rows
    ]  # fmt: skip
    return _table(header, lines)


# What the paper reports, for the report's comparison (see docs/paper-summary.md).
PAPER_GAIN_OVER_BEST_BASELINE = 7.13  # percent, averaged over metrics
PAPER_NOISE_DROP = {"IGR-SR": 10.4, "others": (16.2, 18.6)}  # percent of NDCG at 20% noise
PAPER_BEST_INTENTS = (3, 4)
PAPER_ABLATION_MIN_LOSS = 2.0  # percent of HR@10 lost without each component


def best_baselines(raw: Dict) -> Dict[str, Tuple[str, float]]:
    """``{metric: (label, test mean)}`` of the best main-table baseline (not IGR-SR, not pop)."""
    baselines = {row["label"]: row["test_mean"] for row in _rows(raw, "main") if row["label"] not in ("igrsr", "pop")}
    if not baselines:
        return {}
    best = {metric: max(baselines, key=lambda label: baselines[label][metric]) for metric in TABLE_METRICS}
    return {metric: (label, baselines[label][metric]) for metric, label in best.items()}


def gain_over_best_baseline(raw: Dict) -> Optional[Dict[str, Tuple[str, float]]]:
    """``{metric: (best baseline, IGR-SR's relative gain over it in %)}`` of the main table."""
    best = best_baselines(raw)
    if not best or not any(row["label"] == "igrsr" for row in _rows(raw, "main")):
        return None
    return {
        metric: (label, seed_matched_change(raw, ("main", "igrsr", 0.0), ("main", label, 0.0), metric))
        for metric, (label, _) in best.items()
    }


def noise_drops(raw: Dict, fraction: float = 0.2) -> Dict[str, float]:
    """``{model: relative drop of test NDCG@10 in %}`` from clean to ``fraction`` noise."""
    drops = {model: -noise_change(raw, model, fraction) for model in noise_curves(raw)}
    return {model: drop for model, drop in drops.items() if not np.isnan(drop)}


def noise_change(raw: Dict, label: str, fraction: float) -> float:
    """Relative change (%) of ``label``'s test NDCG@10 from the clean data to ``fraction`` noise."""
    return seed_matched_change(raw, ("noise", label, fraction), ("noise", label, 0.0))


def seed_matched_change(raw: Dict, ours: Tuple[str, str, float], reference: Tuple[str, str, float],
                        metric: str = HEADLINE) -> float:  # fmt: skip
    """Relative change (%) of the mean test ``metric`` of the runs ``ours`` (experiment, label,
    noise) from that of the runs ``reference``, over the seeds both have; NaN without one.

    In one study every cell has the same seeds and this is the change of the tables' means; a
    merged study (``merge_studies``) may have fewer seeds in some cells.
    """
    scores = [
        {record["seed"]: record["test"][metric] for record in raw["records"]
         if (record["experiment"], record["label"], record["noise"]) == cell}
        for cell in (ours, reference)
    ]  # fmt: skip
    seeds = [seed for seed in scores[0] if seed in scores[1]]
    if not seeds:
        return float("nan")
    mine, theirs = (float(np.mean([values[seed] for seed in seeds])) for values in scores)
    return percent_change(mine, theirs)


def claims_section(raw: Dict) -> List[str]:
    """Each of the paper's headline claims next to what this study measured (where it ran)."""
    lines = ["## Against the paper's claims", ""]
    gains = gain_over_best_baseline(raw)
    if gains:
        average = float(np.mean([gain for _, gain in gains.values()]))
        per_metric = ", ".join(f"{metric} {gain:+.1f}% (vs {best})" for metric, (best, gain) in gains.items())
        lines.append(
            f"- **Gain over the best baseline** (paper: +{PAPER_GAIN_OVER_BEST_BASELINE}% on average): "
            f"here {average:+.1f}% on average over the six metrics; {per_metric}."
        )
        paired = {row["versus"]: row for row in raw.get("paired", []) if row["metric"] == HEADLINE}
        best = gains[HEADLINE][0]
        if best in paired:
            lines.append(f"  Paired over the test users, {HEADLINE} against {best}: {format_paired(paired[best])}.")
    drops = noise_drops(raw)
    if "igrsr" in drops and len(drops) > 1:
        others = {model: drop for model, drop in drops.items() if model != "igrsr"}
        low, high = PAPER_NOISE_DROP["others"]
        listed = ", ".join(f"{model} {drop:.1f}%" for model, drop in others.items())
        lines.append(
            f"- **Drop of {HEADLINE} at 20% noise** (paper: IGR-SR {PAPER_NOISE_DROP['IGR-SR']}%, others "
            f"{low}–{high}%; a negative drop is a gain): here IGR-SR {drops['igrsr']:.1f}%; {listed}."
        )
    sweeps = sweep_points(raw).get(SWEPT_OPTIONS["num_intents"])
    if sweeps and len(sweeps) > 1:
        best_m = max(sweeps, key=lambda point: point[1])[0]
        lines.append(
            f"- **Intent tokens m** (paper: gains grow up to m = {PAPER_BEST_INTENTS[0]}–{PAPER_BEST_INTENTS[1]}, "
            f"then plateau): here the best test {HEADLINE} is at m = {best_m} of {[p[0] for p in sweeps]}."
        )
    variants = [row["label"] for row in _rows(raw, "ablation")]
    if "IGR-SR" in variants and len(variants) > 1:
        ablations = [label for label in variants if label != "IGR-SR"]
        losses = {label: -seed_matched_change(raw, *_versus_full_model(label), "HR@10") for label in ablations}
        listed = ", ".join(f"{label} {loss:+.1f}%" for label, loss in losses.items())
        lines.append(
            f"- **Each component matters** (paper: removing any one costs ≥{PAPER_ABLATION_MIN_LOSS:g}% "
            f"HR@10): HR@10 lost here (positive: the full model is better) — {listed}."
        )
    if len(lines) == 2:
        return []
    if len(raw["seeds"]) < 3:
        lines += ["", f"With {len(raw['seeds'])} seed(s), differences of a few percent may be run-to-run variation."]
    return [*lines, ""]


def noise_curves(raw: Dict) -> Dict[str, List[Tuple[float, float, float]]]:
    """``{model: [(fraction, mean, std of test NDCG@10 over seeds), ...]}`` in increasing fraction."""
    curves: Dict[str, List[Tuple[float, float, float]]] = {}
    for row in sorted(_rows(raw, "noise"), key=lambda row: row["noise"]):
        point = (row["noise"], row["test_mean"][HEADLINE], row["test_std"][HEADLINE])
        curves.setdefault(row["label"], []).append(point)
    return curves


def noise_table(raw: Dict) -> List[str]:
    """Test NDCG@10 per model and noise fraction, and its change from the clean data; a merged
    study's models may differ in fractions ("–") and in seeds (per fraction, in the header's order)."""
    rows = {(row["label"], row["noise"]): row for row in _rows(raw, "noise")}
    fractions = sorted({noise for _, noise in rows})
    header = ["model", "seeds", *(f"{HEADLINE} @ {f:g}" for f in fractions)]
    header += [f"change @ {f:g}" for f in fractions[1:]]
    lines = []
    for model in noise_curves(raw):
        cells = [rows.get((model, fraction)) for fraction in fractions]
        counts = [str(len(row["seeds"])) if row else "–" for row in cells]
        values = [_cell(row, HEADLINE) if row else "–" for row in cells]
        changes = [
            _format_change(noise_change(raw, model, fraction)) if row else "–"
            for fraction, row in zip(fractions[1:], cells[1:])
        ]
        lines.append([model, "/".join(counts) if len(set(counts)) > 1 else counts[0], *values, *changes])
    return _table(header, lines)


def percent_change(value: float, reference: float) -> float:
    """``(value − reference) / reference`` in percent, signed; NaN for a zero reference."""
    return 100 * (value - reference) / reference if reference else float("nan")


def _format_change(change: float) -> str:
    return "n/a" if np.isnan(change) else f"{change:+.1f}%"


def ablation_table(raw: Dict) -> List[str]:
    lines = []
    for row in _rows(raw, "ablation"):
        cells = _versus_full_model(row["label"])
        change = [_format_change(seed_matched_change(raw, *cells, metric)) for metric in ("HR@10", HEADLINE)]
        lines.append([row["label"], str(len(row["seeds"])), _cell(row, "HR@10"), _cell(row, HEADLINE), *change])
    return _table(["variant", "seeds", "HR@10", HEADLINE, "HR@10 vs full", f"{HEADLINE} vs full"], lines)


def _versus_full_model(label: str) -> Tuple[Tuple[str, str, float], Tuple[str, str, float]]:
    """The cells of an ablation and of the full model it is read against."""
    return ("ablation", label, 0.0), ("ablation", "IGR-SR", 0.0)


def sweep_points(raw: Dict) -> Dict[str, List[Tuple[float, float, float]]]:
    """``{swept option: [(value, mean, std of test NDCG@10), ...]}``."""
    sweeps = {}
    for option, title in SWEPT_OPTIONS.items():
        rows = sorted(_rows(raw, f"sweep-{option}"), key=lambda row: int(row["label"]))
        if rows:
            sweeps[title] = [(int(r["label"]), r["test_mean"][HEADLINE], r["test_std"][HEADLINE]) for r in rows]
    return sweeps


def sweep_table(raw: Dict, option: str) -> List[str]:
    rows = sorted(_rows(raw, f"sweep-{option}"), key=lambda row: int(row["label"]))
    lines = [
        [row["label"], str(len(row["seeds"])), _cell(row, "HR@10"), _cell(row, HEADLINE),
         f"{row['valid_mean'][HEADLINE]:.4f}"]
        for row in rows
    ]  # fmt: skip
    return _table([option, "seeds", "test HR@10", f"test {HEADLINE}", f"valid {HEADLINE}"], lines)


def tuning_table(raw: Dict) -> List[str]:
    """Validation NDCG@10 of each tuned model at each learning rate, and the one chosen."""
    records = [record for record in raw["records"] if record["experiment"] == "tuning"]
    if not records:
        return []
    rates = sorted({record["lr"] for record in records})
    scores = {(record["model"], record["lr"]): record["valid"][HEADLINE] for record in records}
    models = dict.fromkeys(record["model"] for record in records)
    lines = [
        [model, *(f"{scores[model, lr]:.4f}" if (model, lr) in scores else "–" for lr in rates),
         f"{raw['learning_rates'][model]:g}"]  # every tuned model has its choice
        for model in models
    ]  # fmt: skip
    return [
        "## Learning rates, chosen on validation",
        "",
        f"Validation {HEADLINE} of one run per rate (seed {records[0]['seed']}); every other run of a model "
        "trains with its chosen rate (IGR-SR: its stage 2 over the SASRec of SASRec's rate). No test number "
        "chose anything.",
        "",
        *_table(["model", *(f"lr {lr:g}" for lr in rates), "chosen"], lines),
        "",
    ]


def _learning_rate_note(raw: Dict) -> str:
    if raw.get("learning_rates"):  # IGR-SR's stage-2 rate was tuned too
        return "learning rate chosen per model on validation (table below)" + _stage2_note(raw, skip=("lr",))
    return f"lr {raw['train']['lr']}{_stage2_note(raw)}"


def _stage2_note(raw: Dict, skip: Sequence[str] = ()) -> str:
    changes = {key: value for key, value in (raw.get("stage2_changes") or {}).items() if key not in skip}
    named = {"lr": "lr", "epochs": "epoch limit"}
    listed = ", ".join(f"{named.get(key, key)} {value}" for key, value in changes.items())
    return f"; IGR-SR over its SASRec: {listed}" if listed else ""


def format_paired(row: Dict) -> str:
    """A paired_bootstrap result as "+12.0% (95% interval -3.1% to +41.3%)"."""
    if np.isnan(row["gain_percent"]):
        return "n/a (the other model has no hit)"
    low, high = row["ci95_percent"]
    undefined = row.get("undefined_resamples", 0)
    note = f"; {undefined} resamples without a hit of the other model left out" if undefined else ""
    return f"{row['gain_percent']:+.1f}% (95% interval {low:+.1f}% to {high:+.1f}%{note})"


def paired_table(raw: Dict) -> List[str]:
    rows = raw.get("paired", [])
    if not rows:
        return []
    first = rows[0]
    return [
        f"## {first['model']} against each model and ablation, user by user",
        "",
        f"Relative difference in test {first['metric']} (seed {first['seed']}), with a 95% paired-bootstrap "
        f"interval over the {first['users']} test users ({first['resamples']} resamples): the spread that the "
        "choice of test users alone gives. Training variance comes on top (seeds).",
        "",
        *_table(["versus", f"{first['metric']} difference"], [[row["versus"], format_paired(row)] for row in rows]),
        "",
    ]


def _merged_note(raw: Dict) -> List[str]:
    replaced = raw.get("replaced_by_first")
    note = (
        f"Merged (`igrsr report`) from {', '.join(raw['merged_from'])}. Cells may have fewer seeds than the "
        "study (the `seeds` columns); each gain, drop and ablation change is over the seeds both sides have."
    )
    if replaced:
        note += f" Runs recorded again with other results, the first study's kept: {'; '.join(replaced)}."
    return [note, ""]


def write_report(raw: Dict, out: Path) -> None:
    """``report.md`` with every table, and the figures it links."""
    data, train = raw["data"], raw["train"]
    lines = [
        f"# IGR-SR study: {data['name']}",
        "",
        f"{data['users']} users, {data['items']} items, {data['interactions']} interactions "
        f"(fingerprint {data['fingerprint']}). Leave-one-out, full ranking with the user's history "
        f"removed from the candidates. Seeds {raw['seeds']}: cells are test mean ± std over seeds. "
        f"Epoch limit {train['epochs']}, early stopping on validation {HEADLINE} (patience "
        f"{train['patience']}), batch {train['batch_size']}, {_learning_rate_note(raw)}. "
        + ("Sequence models train on every max_len window of each history. " if train["every_window"] else "")
        + "Raw numbers: `study.json`.",
        "",
        *(QUICK_NOTE if raw["plan"]["name"] == "quick" else []),
        *(_merged_note(raw) if "merged_from" in raw else []),
        *claims_section(raw),
        "## Main results",
        "",
        *main_table(raw),
        "",
        *tuning_table(raw),
        *paired_table(raw),
    ]
    curves = noise_curves(raw)
    if curves:
        drops = {model: [-noise_change(raw, model, point[0]) for point in points] for model, points in curves.items()}
        plot_noise_robustness(curves, drops, HEADLINE, out / "noise.png")
        lines += [
            "",
            "## Noise robustness",
            "",
            "A fraction of each user's input items (training sequences and evaluation histories) is "
            f"replaced by random items; targets are kept (noise seed {raw['noise_seed']}). "
            f"Test {HEADLINE}, and its relative change from the clean data of the same seeds (negative: a drop):",
            "",
            *noise_table(raw),
            "",
            "![noise robustness](noise.png)",
        ]
    if _rows(raw, "ablation"):
        lines += ["", "## Ablations of IGR-SR", "", *ablation_table(raw)]
    sweeps = sweep_points(raw)
    if sweeps:
        # The best baseline as a line: the scale on which the points differ.
        reference = best_baselines(raw).get(HEADLINE)
        plot_sweeps(sweeps, HEADLINE, out / "sweeps.png", reference)
        lines += ["", "## Sensitivity to m and k", ""]
        for option in SWEPT_OPTIONS:
            lines += [*sweep_table(raw, option), ""]
        lines += ["![sweeps](sweeps.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
