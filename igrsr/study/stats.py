"""Statistics of a study: means and spreads over seeds, paired bootstrap over test users."""

import warnings
from typing import Any, Dict, List, Tuple

import numpy as np
from scipy import stats

TABLE_METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20")
HEADLINE = "NDCG@10"
Cell = Tuple[str, str, float]  # (experiment, label, noise) of a table cell


def percent_change(value: float, reference: float) -> float:
    """``(value − reference) / reference`` in percent, signed; NaN for a zero reference."""
    return 100 * (value - reference) / reference if reference else float("nan")


def paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, resamples: int = 2000, seed: int = 0) -> Dict[str, Any]:
    """Relative difference of the means of two per-user metrics, with a 95% bootstrap interval.

    Users are resampled with replacement, the same users for both sides (a paired bootstrap,
    ``scipy.stats.bootstrap(..., paired=True)``): the interval is what the choice of test users
    alone could change.  Percent; NaN where ``theirs`` has a zero mean.  A resample whose
    ``theirs`` is all zero has no relative difference: the percentile interval is over the
    others, and ``undefined_resamples`` counts them.
    """
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape or ours.ndim != 1 or len(ours) == 0:
        raise ValueError(f"expected two equal non-empty 1-d arrays, got shapes {ours.shape} and {theirs.shape}")

    def relative_gain(mine: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray:
        reference = other.sum(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = 100 * (mine.sum(axis=axis) - reference) / reference
        return np.where(reference == 0, np.nan, gain)

    with warnings.catch_warnings():
        # scipy's own interval is NaN when some resample is undefined; the one below is not.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        draws = stats.bootstrap(
            (ours, theirs), relative_gain, paired=True, vectorized=True, n_resamples=resamples,
            method="percentile", rng=np.random.default_rng(seed),
        ).bootstrap_distribution  # fmt: skip
    defined = draws[~np.isnan(draws)]
    low, high = np.percentile(defined, [2.5, 97.5]) if len(defined) else (float("nan"), float("nan"))
    return {
        "gain_percent": float(relative_gain(ours, theirs)),
        "ci95_percent": [float(low), float(high)],
        "users": len(ours),
        "resamples": resamples,
        "undefined_resamples": resamples - len(defined),
    }


def summarize(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Mean and standard deviation over seeds of every (experiment, label, noise) group."""
    groups: Dict[Cell, List[Dict]] = {}
    for record in records:
        groups.setdefault((record["experiment"], record["label"], record["noise"]), []).append(record)
    return [
        {
            "experiment": experiment,
            "label": label,
            "model": members[0]["model"],
            "noise": noise,
            "seeds": [member["seed"] for member in members],
            "test_mean": {k: float(np.mean([m["test"][k] for m in members])) for k in TABLE_METRICS},
            "test_std": {k: sample_std([m["test"][k] for m in members]) for k in TABLE_METRICS},
            "valid_mean": {k: float(np.mean([m["valid"][k] for m in members])) for k in TABLE_METRICS},
            # "best/run epochs, why it stopped" per seed: a run cut by the epoch limit shows.
            "epochs": [f"{m['best_epoch']}/{m['epochs_run']} {m['stopped']}" for m in members],
            "train_minutes": float(np.mean([m["train_seconds"] for m in members]) / 60),
        }
        for (experiment, label, noise), members in groups.items()
    ]


def sample_std(values: List[float]) -> float:
    """Sample standard deviation; 0 for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def seed_matched_change(raw: Dict, ours: Cell, reference: Cell, metric: str = HEADLINE) -> float:
    """Relative change (%) of the mean test ``metric`` of the runs ``ours`` from that of the runs
    ``reference``, over the seeds both have; NaN without one.

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
