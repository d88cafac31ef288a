"""``igrsr migrate PATH...``: rewrite run and study files of older layouts in the current schema.

Every rule about files of an older igrsr lives here; the loaders read the current schema only
(:func:`igrsr.train.checkpoint.load_versioned`) and name this command for older files.

Schema 1 → 2 (igrsr 0.1 → 0.2): a run's options were the constructor arguments the command
line gave it (the model's defaults filling the rest) and its directory a digest of a key with
rules for options added later; a study record said how its run trained only through the
study's options, overrides and learning rates.  Schema 2 keeps each run's resolved config and
its whole settings (the run directory is their digest), and each study record the settings of
its run.  The values are those the runs trained with: a BERT4Rec of schema 1 trained with the
command line's dropout 0.5, and its migrated config says so.
"""

import errno
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from .config import digest
from .models.registry import model_entry
from .study.plan import study_spec
from .study.stats import summarize
from .train import Stage2Config, TrainConfig
from .train.checkpoint import SCHEMA, load_json, save_json


def given_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """Schema 1 kept every command-line model option, None where the model's default applied."""
    return {name: value for name, value in options.items() if value is not None}


def upgrade_study(raw: Dict[str, Any], source: str) -> Dict[str, Any]:
    """A schema-1 ``study.json`` in schema 2: each record gains the settings of its run."""
    train = TrainConfig.from_dict(raw["train"])
    changes = raw.get("stage2_changes") or {}
    stage2 = Stage2Config(stage2_lr=changes.get("lr"), stage2_epochs=changes.get("epochs"))
    chosen_lr = raw.get("learning_rates") or {}
    options = given_options(raw["options"])
    records = []
    for record in raw["records"]:
        # A record without its lr predates learning-rate tuning: it trained with the study's rates.
        spec = study_spec(
            record["model"], {**options, **record["overrides"]}, train, stage2, chosen_lr, record["seed"],
            record.get("lr"),
        )  # fmt: skip
        settings = spec.settings(seed=False)
        settings["revision"] = record.get("revision", recorded_revision(record["model"], source))
        records.append({**record, "lr": spec.train.lr, "settings": settings})
    return {
        **raw,
        "schema": SCHEMA,
        "options": options,
        "train": train.to_dict(),
        "stage2_changes": changes,
        "learning_rates": chosen_lr,
        "records": records,
        "summary": summarize(records),
    }


def recorded_revision(model: str, source: str):
    """The revision of a record written before records kept one: 1 for a model never revised;
    else unknown, and two studies' unknown revisions never merge."""
    return 1 if model_entry(model).revision == 1 else f"unknown in {source}"


def upgrade_run_description(description: Dict[str, Any], backbone: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A schema-1 ``run.json``/``results.json`` in schema 2; ``backbone`` is the upgraded
    description of the SASRec run a stage-2 run trained over (None if gone or not one)."""
    entry = model_entry(description["model"])
    config = entry.config.from_dict({**entry.config().to_dict(), **given_options(description["options"])})
    train = TrainConfig.from_dict(description["train"])
    settings = {
        "model": description["model"],
        "revision": description.get("revision", 1),
        "config": config.to_dict(),
        "train": train.keyed(),
    }
    if entry.needs_backbone:
        if backbone is not None:
            settings["backbone"] = backbone["settings"]
        else:
            settings["backbone_run"] = Path(description["backbone_run"]).name
    upgraded = {key: value for key, value in description.items() if key != "options"}
    return {**upgraded, "schema": SCHEMA, "config": config.to_dict(), "settings": settings, "train": train.to_dict()}


def migrate_runs(root: Path) -> List[str]:
    """Upgrade every schema-1 run directory under ``root`` and rename it to its schema-2 name
    (stage-1 runs first, so the stage-2 runs over them follow); returns what was done."""
    runs = [
        path.parent
        for path in sorted(Path(root).rglob("run.json"))
        if any((path.parent / name).exists() for name in ("best.pt", "last.pt")) and "schema" not in load_json(path)
    ]  # a run directory has a checkpoint; a run.json copied into a report is left as it is
    runs.sort(key=lambda run: model_entry(load_json(run / "run.json")["model"]).needs_backbone)
    moved: Dict[str, Path] = {}
    done = []
    for run in runs:
        files = {name: load_json(run / name) for name in ("run.json", "results.json") if (run / name).exists()}
        old_backbone = files["run.json"].get("backbone_run")
        backbone_dir = moved.get(old_backbone, Path(old_backbone) if old_backbone else None)
        backbone = (
            load_json(backbone_dir / "run.json") if backbone_dir and (backbone_dir / "run.json").exists() else None
        )
        upgraded = {name: upgrade_run_description(content, backbone) for name, content in files.items()}
        key = {
            "schema": SCHEMA,
            **upgraded["run.json"]["settings"],
            "data": upgraded["run.json"]["data"]["fingerprint"],
        }
        target = run.parent / f"{upgraded['run.json']['model']}-{digest(key)}"
        if target.exists():
            done.append(f"{run}: left as it is, {target} exists")
            continue
        shutil.move(str(run), str(target))
        for name, content in upgraded.items():
            content["run_dir"] = str(target)
            if backbone_dir is not None:
                content["backbone_run"] = str(backbone_dir)
            save_json(content, target / name)
        moved[str(run)] = target
        done.append(f"{run} -> {target}")
    return done


def migrate(path: Path) -> List[str]:
    """Upgrade the study files and run directories at or under ``path``; returns what was done."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    studies = [path] if path.is_file() else sorted(path.rglob("study.json"))
    done = []
    for study in studies:
        raw = load_json(study)
        if raw.get("schema", 1) < SCHEMA:
            save_json(upgrade_study(raw, str(study.parent)), study)
            done.append(f"{study}: schema {SCHEMA}")
    if path.is_dir():
        done += migrate_runs(path)
    return done
