"""Running a study's plan: every run through :func:`igrsr.train.train_model`, recorded as it ends.

A finished run is reused and an interrupted one continues from its last checkpoint, so calling
the study again resumes it.  Runs live in ``OUT/runs``; ``OUT/study.json`` holds every run's
record (rewritten after each run) and the tables' summary.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..data import InteractionData, Split, leave_one_out
from ..eval import parse_metric, per_user_metric
from ..models.registry import BACKBONE, model_entry
from ..train import Stage2Config, TrainConfig, train_model
from ..train.checkpoint import SCHEMA, save_json
from ..train.runs import data_summary, per_user_test_ranks
from .plan import StudyPlan, study_spec, with_noisy_inputs
from .report import write_report
from .stats import HEADLINE, paired_bootstrap, summarize

# What the study keeps of each run's results.json (the rest stays in the run directory).
RECORDED_RESULTS = ("run_dir", "test", "valid", "best_epoch", "epochs_run", "stopped", "train_seconds")


@dataclass
class Study:
    """Runs of one dataset, with the options and training settings every run starts from.

    ``options``: the model options given for every model (each takes the ones it has);
    ``stage2``: what IGR-SR's stage 2 over its SASRec changes of ``config``.
    """

    data: InteractionData
    options: Dict[str, Any]
    config: TrainConfig
    seeds: Sequence[int]
    out: Path
    plan: StudyPlan = StudyPlan()
    noise_seed: int = 0
    stage2: Stage2Config = Stage2Config()
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
            options = {**self.options, **overrides}
            spec = study_spec(model, options, self.config, self.stage2, self.chosen_lr, seed, lr)
            print(f"[study] {experiment}: {label} (noise {noise:g}, seed {seed}, lr {spec.train.lr:g})", flush=True)
            result = train_model(spec, data, split, self.out / "runs", resume=True)
            added.append({
                "experiment": experiment, "label": label, "model": model, "overrides": overrides,
                "noise": noise, "seed": seed, "lr": spec.train.lr, "settings": spec.settings(seed=False),
                **{key: result[key] for key in RECORDED_RESULTS},
            })  # fmt: skip
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
            {"model": model, "versus": label, "metric": metric, "seed": seed,
             **paired_bootstrap(values[model], values[label])}
            for label in runs
            if label != model
        ]  # fmt: skip

    def save(self, complete: bool) -> Dict[str, Any]:
        raw = {
            "schema": SCHEMA,
            "complete": complete,
            "plan": asdict(self.plan),
            "data": data_summary(self.data),
            "seeds": list(self.seeds),
            "noise_seed": self.noise_seed,
            "options": self.options,
            "train": self.config.to_dict(),
            "stage2_changes": self.stage2.changes(),
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
    if any(model_entry(model).needs_backbone for model in models):
        models = {BACKBONE: None, **models}
    for model in sorted(models, key=lambda name: model_entry(name).needs_backbone):
        if not model_entry(model).learned:
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
    for experiment, label, model, overrides, noise in plan.runs():
        study.run(experiment, label, model, overrides, noise=noise)
    study.paired = study.paired_comparisons()
    raw = study.save(complete=True)
    write_report(raw, study.out)
    return raw
