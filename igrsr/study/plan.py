"""What a study trains: the plan of experiments, the data variants, and each run's spec."""

from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..data import InteractionData, inject_noise
from ..models.registry import BACKBONE
from ..train import RunSpec, Stage2Config, TrainConfig, make_spec

ALL_MODELS = ("pop", "sasrec", "bert4rec", "ssept", "lightrec", "rearec-erl", "rearec-prl", "igrsr")
# IGR-SR option changes that remove one component each (the paper's ablation study).
ABLATIONS = {
    "IGR-SR": {},
    "w/o LID": {"intent_source": "free"},
    "w/o cross-attention": {"fusion": "concat"},
    "w/o ICR": {"cl_weight": 0.0},
}
# The command line's names of the ablations (``--ablations lid,icr``).
ABLATION_NAMES = {"lid": "w/o LID", "cross-attention": "w/o cross-attention", "icr": "w/o ICR"}
# The swept IGR-SR options and how the report names them.
SWEPT_OPTIONS = {"num_intents": "m (intent tokens)", "num_prefix": "k (prefix tokens)"}


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

    def runs(self) -> Iterator[Tuple[str, str, str, Dict[str, Any], float]]:
        """``(experiment, label, model, option overrides, noise)`` of every run after the
        learning-rate tuning, in the order they train."""
        for model in self.models:
            yield "main", model, model, {}, 0.0
        for fraction in self.noise_fractions:
            for model in self.noise_models:
                yield "noise", model, model, {}, fraction
        if "igrsr" in self.models:
            for label in self.ablations:
                yield "ablation", label, "igrsr", ABLATIONS[label], 0.0
            for option, values in self.sweeps().items():
                for value in values:
                    yield f"sweep-{option}", str(value), "igrsr", {option: value}, 0.0


def check_plan(
    plan: StudyPlan, options: Mapping[str, Any], train: TrainConfig, stage2: Stage2Config, seeds: Sequence[int]
) -> None:
    """Build the spec of every run of ``plan`` (first and last seed, each tuned learning rate),
    so that a bad sweep value, rate or seed fails before the first run trains, naming the option."""
    for _, _, model, overrides, _ in plan.runs():
        for seed in {seeds[0], seeds[-1]}:
            for lr in (None, *plan.learning_rates):
                study_spec(model, {**options, **overrides}, train, stage2, {}, seed, lr)


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


def study_spec(
    model: str,
    options: Mapping[str, Any],
    train: TrainConfig,
    stage2: Stage2Config,
    chosen_lr: Mapping[str, float],
    seed: int,
    lr: Optional[float] = None,
) -> RunSpec:
    """The run of ``model`` at ``seed`` in a study: learning rate ``lr``, else the one chosen for
    it on validation, else the study's (a stage-2 model's own stage-2 rate); its SASRec with
    SASRec's chosen rate."""
    chosen = lr if lr is not None else chosen_lr.get(model)
    own = replace(train, seed=seed) if chosen is None else replace(train, seed=seed, lr=chosen)
    if chosen is not None:  # a chosen rate replaces the stage-2 rate too
        stage2 = replace(stage2, stage2_lr=None)
    backbone = replace(train, seed=seed, lr=chosen_lr.get(BACKBONE, train.lr))
    return make_spec(model, options, own, stage2, backbone_train=backbone)
