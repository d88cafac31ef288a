"""Runs: one trained model per directory, named by a digest of everything that decides its result.

A :class:`RunSpec` is what a run trains: the model, its resolved config, the training settings
and, for a stage-2 model, the SASRec run it trains over.  Its directory is
``OUT/<dataset>/<model>-<digest>``, the digest covering the whole resolved spec (runtime-only
settings such as the device aside) and the data's fingerprint.  ``run.json`` says what the run
trains (written when it starts, so an unfinished run's best checkpoint can be scored too); a
finished run (its ``results.json`` exists) is reused instead of retrained, which is how IGR-SR's
stage 1 is shared by every IGR-SR run over the same SASRec settings.
"""

import hashlib
import pickle
import platform
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from ..config import Config, digest
from ..data import InteractionData, Split
from ..distributed import barrier, is_main_process, world_size
from ..eval import model_ranks
from ..models import SequentialRecommender
from ..models.registry import BACKBONE, build_model, model_config, model_entry
from .checkpoint import SCHEMA, load_torch, load_versioned, remove_stale_temps, save_json, save_numpy
from .config import Stage2Config, TrainConfig
from .rundir import hold_run_dir, resume_mismatch, start_over
from .trainer import Trainer, set_seed

DEFAULT_STAGE2 = Stage2Config()  # a frozen dataclass: one shared default is safe


def data_fingerprint(data: InteractionData) -> str:
    hasher = hashlib.sha1()
    hasher.update(np.asarray([len(s) for s in data.sequences], dtype=np.int64).tobytes())
    for sequence in data.sequences:
        hasher.update(np.asarray(sequence, dtype=np.int64).tobytes())
    return hasher.hexdigest()[:12]


def data_summary(data: InteractionData) -> Dict[str, Any]:
    return {
        "name": data.name,
        "users": data.num_users,
        "items": data.num_items,
        "interactions": data.num_interactions,
        "fingerprint": data_fingerprint(data),
        # How to read the data again (file, reader options) and what the reader filtered.
        "source": data.source,
        "preprocessing": data.preprocessing,
    }


@dataclass(frozen=True)
class RunSpec:
    """What one run trains.  A stage-2 model (``needs_backbone``) trains over ``backbone_run``
    (a finished SASRec run directory) if given, else over the run of ``backbone``, trained
    first when it is not there."""

    model: str
    config: Config
    train: TrainConfig
    backbone: Optional["RunSpec"] = None
    backbone_run: Optional[str] = None

    def settings(self, seed: bool = True) -> Dict[str, Any]:
        """Everything that decides the run's result but the data; ``seed=False`` leaves the seeds
        out (what the runs of one table cell share)."""
        train = self.train.keyed()
        if not seed:
            del train["seed"]
        settings = {
            "model": self.model,
            "revision": model_entry(self.model).revision,
            "config": self.config.to_dict(),
            "train": train,
        }
        if self.backbone_run is not None:
            settings["backbone_run"] = Path(self.backbone_run).name
        elif self.backbone is not None:
            settings["backbone"] = self.backbone.settings(seed)
        return settings

    def key(self, data: InteractionData) -> Dict[str, Any]:
        return {"schema": SCHEMA, **self.settings(), "data": data_fingerprint(data)}

    def run_dir(self, out: Path, data: InteractionData) -> Path:
        return Path(out) / data.name / f"{self.model}-{digest(self.key(data))}"


def make_spec(
    model: str,
    options: Mapping[str, Any],
    train: TrainConfig,
    stage2: Stage2Config = DEFAULT_STAGE2,
    backbone_train: Optional[TrainConfig] = None,
    backbone_run: Optional[str] = None,
    model_options: Mapping[str, Mapping[str, Any]] = {},
) -> RunSpec:
    """The run of ``model`` with the given model ``options`` (each model takes the ones it has,
    the rest keep its own defaults; ``model_options[name]`` replace them for one model) and
    training settings: a stage-2 model with ``stage2``'s changes, over the SASRec of the same
    options trained with ``backbone_train`` (default ``train``) unless ``backbone_run`` names
    one; popularity, which only counts, for one epoch."""
    entry = model_entry(model)
    config = model_config(model, {**options, **model_options.get(model, {})})
    own = stage2.apply(train) if entry.stage2_settings else train
    if not entry.learned:
        own = replace(own, epochs=1)  # more epochs would only repeat the count
    backbone = None
    if entry.needs_backbone and backbone_run is None:
        backbone = make_spec(BACKBONE, options, backbone_train or train, model_options=model_options)
        check_over_backbone = getattr(config, "check_backbone", None)
        if check_over_backbone is not None:
            check_over_backbone(backbone.config)
    return RunSpec(model, config, own, backbone, None if backbone_run is None else str(backbone_run))


def environment() -> Dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "processes": world_size(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def train_model(
    spec: RunSpec, data: InteractionData, split: Split, out: Path, resume: bool = False, fresh: bool = False
) -> Dict[str, Any]:
    """Train ``spec`` (its stage 1 first, if it has one and that is not there) or reuse its
    finished run; returns the run's results (also in ``results.json``)."""
    entry = model_entry(spec.model)
    backbone, backbone_dir = None, None
    if entry.needs_backbone:
        backbone_dir = spec.backbone_run or train_model(spec.backbone, data, split, out, resume=resume)["run_dir"]
        backbone = load_trained(Path(backbone_dir), data, split, spec.train.device)
    run_dir = spec.run_dir(out, data)
    results_path = run_dir / "results.json"
    if results_path.exists() and not fresh:
        if is_main_process():
            print(f"{spec.model}: reusing the finished run in {run_dir}")
        return load_versioned(results_path)
    # One lock per run, held by rank 0 (the process that writes) for every rank.
    with hold_run_dir(run_dir) if is_main_process() else nullcontext():
        if is_main_process():
            prepare_run_dir(run_dir, spec.model, fresh)
        barrier()  # every rank sees the run directory as rank 0 left it
        if results_path.exists():  # finished by the process that held the lock until now
            return load_versioned(results_path)
        return train_in(run_dir, spec, data, split, backbone, backbone_dir, resume)


def prepare_run_dir(run_dir: Path, model: str, fresh: bool) -> None:
    """Before training in ``run_dir`` (whose lock the caller holds): ``--fresh`` removes what an
    earlier run left, and temporaries of interrupted writes go."""
    if fresh:
        start_over(run_dir)
    removed = remove_stale_temps(run_dir)
    if removed:
        print(f"{model}: removed {len(removed)} temporary file(s) of an interrupted write in {run_dir}")


def train_in(
    run_dir: Path, spec: RunSpec, data: InteractionData, split: Split, backbone: Optional[SequentialRecommender],
    backbone_dir: Optional[str], resume: bool,
) -> Dict[str, Any]:  # fmt: skip
    """Train ``spec`` in ``run_dir`` (whose lock the caller holds) and write its results."""
    entry = model_entry(spec.model)
    results_path = run_dir / "results.json"
    description = {
        "schema": SCHEMA,
        "model": spec.model,
        "revision": entry.revision,
        "config": spec.config.to_dict(),
        "settings": spec.settings(),
        "data": data_summary(data),
        "run_dir": str(run_dir),
        "backbone_run": None if backbone_dir is None else str(backbone_dir),
        "train": spec.train.to_dict(),
    }
    if is_main_process():  # every rank trains; one writes the run's files
        save_json(description, run_dir / "run.json")
    set_seed(spec.train.seed)  # the weights' initialization is part of what the seed fixes
    model = build_model(
        spec.model, split.num_items, len(split.train), spec.config, backbone=backbone, item_counts=split.item_counts()
    )
    started = time.perf_counter()
    summary = Trainer(model, split, spec.train, run_dir, title=spec.model).fit(resume=resume)
    result = {
        **description,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "wall_seconds": time.perf_counter() - started,
        "environment": environment(),
        **summary,
    }
    if is_main_process():
        save_json(result, results_path)
    barrier()  # a stage 2 on every rank reads the results.json of its stage 1
    return result


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / "results.json").exists()


def resume_problem(spec: RunSpec, data: InteractionData, out: Path) -> Optional[str]:
    """Why ``--resume`` would start ``spec`` (or its stage 1) anew though an interrupted run of
    other options lies beside it, naming the options; None if it resumes or has nothing to."""
    run_dir = spec.run_dir(out, data)
    if is_finished(run_dir):
        return None
    if not (run_dir / "last.pt").exists():
        problem = resume_mismatch(spec.model, spec.settings(), run_dir, data_fingerprint(data))
        if problem:
            return problem
    return None if spec.backbone is None else resume_problem(spec.backbone, data, out)


# What every run.json and results.json holds (see train_model).
DESCRIBED = ("model", "revision", "config", "data")


def run_description(run_dir: Path) -> Dict[str, Any]:
    """What a run trains: its ``results.json`` when finished, else the ``run.json`` of its start."""
    for name in ("results.json", "run.json"):
        path = Path(run_dir) / name
        if path.exists():
            description = load_versioned(path)
            missing = [key for key in DESCRIBED if key not in description]
            if missing:
                raise ValueError(f"{path} is not a run description: it has no {missing[0]!r} (edited or corrupt?)")
            return description
    raise FileNotFoundError(f"{run_dir} is not a run directory (no results.json or run.json)")


def load_best(run_dir: Path, data: InteractionData, split: Split, device: str) -> Tuple[SequentialRecommender, int]:
    """A run's model with its best weights so far, finished or not, and the epoch they are from."""
    run_dir = Path(run_dir)
    description = run_description(run_dir)
    if description["data"]["fingerprint"] != data_fingerprint(data):
        raise ValueError(f"the run in {run_dir} was trained on other data than {data.name!r}")
    entry = model_entry(description["model"])
    if description["revision"] != entry.revision:
        raise ValueError(
            f"the run in {run_dir} trained revision {description['revision']} of {description['model']!r}, "
            f"which computes other things than this package's revision {entry.revision}"
        )
    if not (run_dir / "best.pt").exists():
        raise FileNotFoundError(f"{run_dir} has no best.pt yet: no epoch of it has finished")
    backbone = None
    if entry.needs_backbone:
        backbone = load_trained(Path(description["backbone_run"]), data, split, device)
    config = entry.config.from_dict(description["config"], source=str(run_dir / "run.json"))
    model = build_model(description["model"], split.num_items, len(split.train), config, backbone=backbone)
    try:
        checkpoint = load_torch(run_dir / "best.pt", map_location=device)
    except (EOFError, RuntimeError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(f"{run_dir / 'best.pt'} cannot be read (truncated or corrupt?): {error}") from None
    if not isinstance(checkpoint, dict) or not {"epoch", "model"} <= checkpoint.keys():
        raise ValueError(f"{run_dir / 'best.pt'} is not a checkpoint of igrsr (no epoch and model weights)")
    if "best_epoch" in description and checkpoint["epoch"] != description["best_epoch"]:
        # Each file is written atomically, but copying or merging run directories can mix
        # two runs of the same key: its results would then describe other weights.
        raise ValueError(
            f"{run_dir / 'best.pt'} holds epoch {checkpoint['epoch']} but the run's results.json "
            f"reports best epoch {description['best_epoch']}: the checkpoint was replaced after the "
            "run finished; retrain it (train --fresh)"
        )
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:  # the weights of another model or configuration
        raise ValueError(f"{run_dir / 'best.pt'} does not hold this run's weights: {error}") from None
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
        save_numpy(model_ranks(model, split, "test", device=device).numpy(), path)
    return np.load(path)
