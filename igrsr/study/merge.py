"""One study of the runs of several: e.g. seeds trained as separate jobs, parts run apart."""

from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..train import TrainConfig
from .stats import summarize


def merge_studies(
    studies: Dict[str, Dict[str, Any]],
    models: Optional[Sequence[str]] = None,
    keep_first: bool = False,
    only: Optional[Dict[str, Sequence[str]]] = None,
) -> Dict[str, Any]:
    """One study of the runs of several (``{name: study.json contents}``), e.g. of seeds trained
    as separate jobs (``--seed N --seeds 1`` each): each table cell is then over all its seeds.

    The studies must share their data and study-wide settings (training but the seed, stage-2
    changes, chosen learning rates, noise seed, plan); the runs of one cell must share every
    setting but the seed (a record's ``settings``: model, revision, resolved config, training,
    backbone) — a LightRec with other codebook options is another model, not another seed.  A
    seed recorded twice in a cell is kept once if both records have the same test metrics (a run
    two studies reused) and refused otherwise, unless ``keep_first`` (a run retrained elsewhere,
    where floating point may differ a little): then the first study's is kept and the others
    listed under ``"replaced_by_first"``.  ``models``: keep only those models' runs;
    ``only[name]``: keep only those models' runs of the study ``name``.  The paired comparisons
    are the lowest seed's.
    """
    if not studies:
        raise ValueError("no study to merge")
    (first_name, first), *others = studies.items()
    for name, raw in others:
        refuse_differences(study_settings(first), study_settings(raw), f"{name} differs from {first_name} in")
    records: List[Dict[str, Any]] = []
    dropped: List[str] = []
    # The labels whose merged runs each study recorded: its paired comparisons hold for those only.
    contributed: Dict[str, Set[str]] = {name: set() for name in studies}
    cells: Dict[Tuple, Tuple[str, Dict[str, Any], Dict[int, Dict[str, Any]]]] = {}
    for name, raw in studies.items():
        kept_models = (only or {}).get(name, models)
        for record in raw["records"]:
            if kept_models is not None and record["model"] not in kept_models:
                continue
            cell = (record["experiment"], record["label"], record["noise"])
            where = f"{record['label']} ({record['experiment']}, noise {record['noise']:g})"
            source, expected, seeds = cells.setdefault(cell, (name, record["settings"], {}))
            refuse_differences(
                expected, record["settings"], f"{where} of {name} trained with other settings than in {source}:"
            )
            seen = seeds.get(record["seed"])
            if seen is not None and seen["test"] != record["test"]:
                if not keep_first:
                    raise ValueError(
                        f"{where}: seed {record['seed']} has other test results in {name} than before "
                        "(a retrained run? keep the first study's with keep_first / --keep-first)"
                    )
                dropped.append(f"{where}, seed {record['seed']}, of {name}")
                continue
            contributed[name].add(record["label"])
            if seen is None:
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
        "paired": lowest_seed_comparisons(studies, contributed),
        "summary": summarize(records),
    }


def lowest_seed_comparisons(studies: Dict[str, Dict[str, Any]], labels: Dict[str, Set[str]]) -> List[Dict[str, Any]]:
    """The paired comparisons of the lowest seed that has any, once each; a study's comparison
    counts only between ``labels[study]``, the labels whose merged runs are that study's."""
    rows = [
        row for name, raw in studies.items() for row in raw.get("paired", [])
        if {row["model"], row["versus"]} <= labels[name]
    ]  # fmt: skip
    lowest = min((row["seed"] for row in rows), default=None)
    kept: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        if row["seed"] == lowest:
            kept.setdefault(row["versus"], row)
    return list(kept.values())


def study_settings(raw: Dict[str, Any]) -> Dict[str, Any]:
    """What every run of a study shares, the seed aside."""
    training = TrainConfig.from_dict(raw["train"]).keyed()
    del training["seed"]
    return {
        "data": raw["data"]["fingerprint"],
        "plan": raw["plan"]["name"],
        "train": training,
        "stage2_changes": raw["stage2_changes"],
        "learning_rates": raw["learning_rates"],
        "noise_seed": raw["noise_seed"],
    }


def refuse_differences(expected: Dict[str, Any], found: Dict[str, Any], context: str) -> None:
    differences = [
        f"{name} {found_value!r} instead of {expected_value!r}"
        for name, (expected_value, found_value) in flat_pairs(expected, found).items()
        if expected_value != found_value
    ]
    if differences:
        raise ValueError(f"{context} {'; '.join(differences)}")


def flat_pairs(expected: Dict[str, Any], found: Dict[str, Any], prefix: str = "") -> Dict[str, Tuple[Any, Any]]:
    """``{"train.lr": (expected, found), ...}`` over the keys of two nested dicts (None: missing)."""
    pairs = {}
    for name in dict.fromkeys([*expected, *found]):
        a, b = expected.get(name), found.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            pairs.update(flat_pairs(a, b, f"{prefix}{name}."))
        else:
            pairs[f"{prefix}{name}"] = (a, b)
    return pairs
