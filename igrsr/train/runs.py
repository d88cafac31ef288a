"""Runs: one trained model per directory, named by what determines its result.

A run directory is ``OUT/<dataset>/<model>-<hash>`` where the hash covers the model's
options, the training settings and the data's fingerprint.  ``run.json`` says what the run
trains (written when it starts, so an unfinished run's best checkpoint can be scored too);
a finished run (its ``results.json`` exists) is reused instead of retrained, which is how
IGR-SR's stage 1 is shared by every IGR-SR run over the same SASRec settings.
"""

import hashlib
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..data import InteractionData, Split, load_dataset, make_synthetic
from ..models import SequentialRecommender
from ..models.registry import BACKBONE, MODELS, build_model, options_for
from .checkpoint import load_json, load_torch, save_json, save_numpy
from .trainer import TrainConfig, Trainer, set_seed, target_ranks_of

SYNTHETIC = "synthetic"
# Training settings that change how fast a run goes, not what it computes.
NOT_IN_RUN_KEY = ("device", "eval_batch_size", "progress")
# Settings added after runs were recorded: at these values they stay out of the key, so the
# earlier runs (which trained with them) keep their directories and are reused.
KEYED_WHEN_CHANGED = {"every_window": False}
# Settings that only change what a sequence model (one example per window) trains on.
SEQUENCE_MODELS_ONLY = ("every_window",)


def load_data(path: Optional[str]) -> InteractionData:
    """Read a dataset file, or build the embedded synthetic one for ``None``/"synthetic"."""
    if path is None or path == SYNTHETIC:
        return make_synthetic()
    return load_dataset(path)


def data_fingerprint(data: InteractionData) -> str:
    digest = hashlib.sha1()
    digest.update(np.asarray([len(s) for s in data.sequences], dtype=np.int64).tobytes())
    for sequence in data.sequences:
        digest.update(np.asarray(sequence, dtype=np.int64).tobytes())
    return digest.hexdigest()[:12]


def data_summary(data: InteractionData) -> Dict[str, Any]:
    return {
        "name": data.name,
        "users": data.num_users,
        "items": data.num_items,
        "interactions": data.num_interactions,
        "fingerprint": data_fingerprint(data),
    }


def run_key(model_name: str, model_options: Dict, config: TrainConfig, data: InteractionData) -> Dict:
    return {**run_settings(model_name, model_options, config), "data": data_fingerprint(data)}


def run_settings(model_name: str, model_options: Dict, config: TrainConfig) -> Dict:
    """What determines a run's result besides its data: the model, its options and revision,
    the training settings (the seed among them)."""
    ignored = NOT_IN_RUN_KEY
    if MODELS[model_name].cls.example_kind != "sequence":
        ignored += SEQUENCE_MODELS_ONLY  # a prefix model trains on the same examples either way
    training = {
        name: value
        for name, value in asdict(config).items()
        if name not in ignored and not (name in KEYED_WHEN_CHANGED and value == KEYED_WHEN_CHANGED[name])
    }
    key = {"model": model_name, "options": model_options, "train": training}
    revision = MODELS[model_name].revision
    if revision != 1:  # revision 1 predates revisions: its runs keep their directories
        key["revision"] = revision
    return key


def run_dir_for(out: Path, key: Dict, data_name: str) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return Path(out) / data_name / f"{key['model']}-{digest}"


def environment() -> Dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def train_model(
    model_name: str,
    data: InteractionData,
    split: Split,
    options: Dict[str, Any],
    config: TrainConfig,
    out: Path,
    resume: bool = False,
    fresh: bool = False,
    backbone_run: Optional[Path] = None,
    backbone_config: Optional[TrainConfig] = None,
) -> Dict[str, Any]:
    """Train ``model_name`` (and its stage 1 first, if it has one) or reuse a finished run.

    ``options`` holds every model hyperparameter of the command line; each model takes the
    ones its constructor accepts.  A stage-2 model (IGR-SR) runs over ``backbone_run``, a
    finished SASRec run directory on the same data; by default the SASRec run with the same
    options and the training settings ``backbone_config`` (default: ``config``), trained first
    if there is none.  Returns the run's results (also in ``results.json``).
    """
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; expected one of {sorted(MODELS)}")
    entry = MODELS[model_name]
    backbone = None
    if entry.needs_backbone:
        if backbone_run is None:
            stage_one = train_model(BACKBONE, data, split, options, backbone_config or config, out, resume=resume)
            backbone_run = stage_one["run_dir"]
        backbone_run = str(backbone_run)
        backbone = load_trained(Path(backbone_run), data, split, config.device)
    model_options = options_for(entry.cls, options)
    key = run_key(model_name, model_options, config, data)
    if backbone_run is not None:
        key["backbone"] = Path(backbone_run).name
    run_dir = run_dir_for(out, key, data.name)
    results_path = run_dir / "results.json"
    if results_path.exists() and not fresh:
        print(f"{model_name}: reusing the finished run in {run_dir}")
        return load_json(results_path)
    description = {
        "model": model_name,
        "revision": entry.revision,
        "options": model_options,
        "data": data_summary(data),
        "run_dir": str(run_dir),
        "backbone_run": backbone_run,
        "train": asdict(config),
    }
    save_json(description, run_dir / "run.json")
    set_seed(config.seed)  # the weights' initialization is part of what the seed fixes
    model = build_model(model_name, split.num_items, len(split.train), options, backbone=backbone)
    started = time.perf_counter()
    summary = Trainer(model, split, config, run_dir, title=model_name).fit(resume=resume)
    result = {
        **description,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "wall_seconds": time.perf_counter() - started,
        "environment": environment(),
        **summary,
    }
    save_json(result, results_path)
    return result


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "results.json").exists()


def run_description(run_dir: Path) -> Dict[str, Any]:
    """What a run trains: its ``results.json`` when finished, else the ``run.json`` of its start."""
    for name in ("results.json", "run.json"):
        if (Path(run_dir) / name).exists():
            return load_json(Path(run_dir) / name)
    raise FileNotFoundError(f"{run_dir} is not a run directory (no results.json or run.json)")


def load_best(run_dir: Path, data: InteractionData, split: Split, device: str) -> Tuple[SequentialRecommender, int]:
    """A run's model with its best weights so far, finished or not, and the epoch they are from."""
    run_dir = Path(run_dir)
    description = run_description(run_dir)
    if description["data"]["fingerprint"] != data_fingerprint(data):
        raise ValueError(f"the run in {run_dir} was trained on other data than {data.name!r}")
    entry = MODELS[description["model"]]
    revision, current = description.get("revision", 1), entry.revision
    if revision != current:
        raise ValueError(
            f"the run in {run_dir} trained revision {revision} of {description['model']!r}, which "
            f"computes other things than this package's revision {current}"
        )
    if not (run_dir / "best.pt").exists():
        raise FileNotFoundError(f"{run_dir} has no best.pt yet: no epoch of it has finished")
    backbone = None
    if entry.needs_backbone:
        backbone = load_trained(Path(description["backbone_run"]), data, split, device)
    num_users = len(split.train)
    model = build_model(description["model"], split.num_items, num_users, description["options"], backbone=backbone)
    checkpoint = load_torch(run_dir / "best.pt", map_location=device)
    if "best_epoch" in description and checkpoint["epoch"] != description["best_epoch"]:
        # Each file is written atomically, but copying or merging run directories can mix
        # two runs of the same key: its results would then describe other weights.
        raise ValueError(
            f"{run_dir / 'best.pt'} holds epoch {checkpoint['epoch']} but the run's results.json "
            f"reports best epoch {description['best_epoch']}: the checkpoint was replaced after the "
            "run finished; retrain it (train --fresh)"
        )
    model.load_state_dict(checkpoint["model"])
    return model.to(device), checkpoint["epoch"]


def load_trained(run_dir: Path, data: InteractionData, split: Split, device: str) -> SequentialRecommender:
    """A finished run's model with its best weights (a half-trained one is refused)."""
    if not is_finished(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no finished run (no results.json)")
    return load_best(run_dir, data, split, device)[0]


def per_user_test_ranks(run_dir: Path, data: InteractionData, split: Split, device: str = "cpu") -> np.ndarray:
    """0-based test rank of every user's target under a finished run's best model.

    Computed once (the model is rebuilt and scored) and kept in ``test_ranks.npy``: per-user
    results are what paired comparisons between two runs need.
    """
    path = Path(run_dir) / "test_ranks.npy"
    if not path.exists():
        model = load_trained(Path(run_dir), data, split, device)
        ranks = target_ranks_of(model, split, "test", TrainConfig(device=device, progress=False))
        save_numpy(ranks.numpy(), path)
    return np.load(path)
