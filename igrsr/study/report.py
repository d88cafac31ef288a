"""A study's report: ``report.md`` with every table, the paper's claims beside what was measured,
and the figures (``noise.png``, ``sweeps.png``)."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..train.plots import plot_noise_robustness, plot_sweeps
from .plan import SWEPT_OPTIONS
from .stats import HEADLINE, TABLE_METRICS, Cell, seed_matched_change

QUICK_NOTE = [
    "**Quick plan**: one seed, a few epochs and fewer noise levels and sweep points. It checks",
    "the pipeline end to end; its numbers are not results to compare models by.",
    "",
]


def rows_of(raw: Dict, experiment: str) -> List[Dict]:
    return [row for row in raw["summary"] if row["experiment"] == experiment]


def cell_text(row: Dict, metric: str) -> str:
    return f"{row['test_mean'][metric]:.4f} ± {row['test_std'][metric]:.4f}"


def markdown_table(header: Sequence[str], lines: List[Sequence[str]]) -> List[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(line) + " |" for line in lines),
    ]


def main_table(raw: Dict) -> List[str]:
    rows = rows_of(raw, "main")
    header = ["model", "seeds", *TABLE_METRICS, "epochs (best/run, stop)", "train min"]
    lines = [
        [row["label"], str(len(row["seeds"])), *(cell_text(row, k) for k in TABLE_METRICS), ", ".join(row["epochs"]),
         f"{row['train_minutes']:.1f}"]
        for row in rows
    ]  # fmt: skip
    return markdown_table(header, lines)


# What the paper (arXiv 2512.14034) reports, for the report's comparison: its headline numbers.
PAPER_GAIN_OVER_BEST_BASELINE = 7.13  # percent, averaged over metrics
PAPER_NOISE_DROP = {"IGR-SR": 10.4, "others": (16.2, 18.6)}  # percent of NDCG at 20% noise
PAPER_BEST_INTENTS = (3, 4)
PAPER_ABLATION_MIN_LOSS = 2.0  # percent of HR@10 lost without each component


def best_baselines(raw: Dict) -> Dict[str, Tuple[str, float]]:
    """``{metric: (label, test mean)}`` of the best main-table baseline (not IGR-SR, not pop)."""
    baselines = {row["label"]: row["test_mean"] for row in rows_of(raw, "main") if row["label"] not in ("igrsr", "pop")}
    if not baselines:
        return {}
    best = {metric: max(baselines, key=lambda label: baselines[label][metric]) for metric in TABLE_METRICS}
    return {metric: (label, baselines[label][metric]) for metric, label in best.items()}


def gain_over_best_baseline(raw: Dict) -> Optional[Dict[str, Tuple[str, float]]]:
    """``{metric: (best baseline, IGR-SR's relative gain over it in %)}`` of the main table."""
    best = best_baselines(raw)
    if not best or not any(row["label"] == "igrsr" for row in rows_of(raw, "main")):
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
    variants = [row["label"] for row in rows_of(raw, "ablation")]
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
    for row in sorted(rows_of(raw, "noise"), key=lambda row: row["noise"]):
        point = (row["noise"], row["test_mean"][HEADLINE], row["test_std"][HEADLINE])
        curves.setdefault(row["label"], []).append(point)
    return curves


def noise_table(raw: Dict) -> List[str]:
    """Test NDCG@10 per model and noise fraction, and its change from the clean data; a merged
    study's models may differ in fractions ("–") and in seeds (per fraction, in the header's order)."""
    rows = {(row["label"], row["noise"]): row for row in rows_of(raw, "noise")}
    fractions = sorted({noise for _, noise in rows})
    header = ["model", "seeds", *(f"{HEADLINE} @ {f:g}" for f in fractions)]
    header += [f"change @ {f:g}" for f in fractions[1:]]
    lines = []
    for model in noise_curves(raw):
        cells = [rows.get((model, fraction)) for fraction in fractions]
        counts = [str(len(row["seeds"])) if row else "–" for row in cells]
        values = [cell_text(row, HEADLINE) if row else "–" for row in cells]
        changes = [
            _format_change(noise_change(raw, model, fraction)) if row else "–"
            for fraction, row in zip(fractions[1:], cells[1:])
        ]
        lines.append([model, "/".join(counts) if len(set(counts)) > 1 else counts[0], *values, *changes])
    return markdown_table(header, lines)


def _format_change(change: float) -> str:
    return "n/a" if np.isnan(change) else f"{change:+.1f}%"


def ablation_table(raw: Dict) -> List[str]:
    lines = []
    for row in rows_of(raw, "ablation"):
        cells = _versus_full_model(row["label"])
        change = [_format_change(seed_matched_change(raw, *cells, metric)) for metric in ("HR@10", HEADLINE)]
        lines.append([row["label"], str(len(row["seeds"])), cell_text(row, "HR@10"), cell_text(row, HEADLINE), *change])
    return markdown_table(["variant", "seeds", "HR@10", HEADLINE, "HR@10 vs full", f"{HEADLINE} vs full"], lines)


def _versus_full_model(label: str) -> Tuple[Cell, Cell]:
    """The cells of an ablation and of the full model it is read against."""
    return ("ablation", label, 0.0), ("ablation", "IGR-SR", 0.0)


def sweep_points(raw: Dict) -> Dict[str, List[Tuple[float, float, float]]]:
    """``{swept option: [(value, mean, std of test NDCG@10), ...]}``."""
    sweeps = {}
    for option, title in SWEPT_OPTIONS.items():
        rows = sorted(rows_of(raw, f"sweep-{option}"), key=lambda row: int(row["label"]))
        if rows:
            sweeps[title] = [(int(r["label"]), r["test_mean"][HEADLINE], r["test_std"][HEADLINE]) for r in rows]
    return sweeps


def sweep_table(raw: Dict, option: str) -> List[str]:
    rows = sorted(rows_of(raw, f"sweep-{option}"), key=lambda row: int(row["label"]))
    lines = [
        [row["label"], str(len(row["seeds"])), cell_text(row, "HR@10"), cell_text(row, HEADLINE),
         f"{row['valid_mean'][HEADLINE]:.4f}"]
        for row in rows
    ]  # fmt: skip
    return markdown_table([option, "seeds", "test HR@10", f"test {HEADLINE}", f"valid {HEADLINE}"], lines)


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
        *markdown_table(["model", *(f"lr {lr:g}" for lr in rates), "chosen"], lines),
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
        *markdown_table(
            ["versus", f"{first['metric']} difference"], [[row["versus"], format_paired(row)] for row in rows]
        ),
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
    if rows_of(raw, "ablation"):
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
