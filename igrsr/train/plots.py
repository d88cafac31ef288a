"""Figures: training curves beside a run's JSON, and the study's noise and sweep plots."""

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .checkpoint import atomic_write  # noqa: E402


def save_figure(figure, path: Path) -> None:
    """Write ``figure`` (in the format of ``path``'s suffix) atomically, so that a run killed
    while plotting leaves no half image, and close it."""
    atomic_write(path, lambda handle: figure.savefig(handle, format=Path(path).suffix.lstrip("."), dpi=110))
    plt.close(figure)


def plot_training_curves(history: List[Dict], path: Path, title: str) -> None:
    """Training loss and validation NDCG@10 / HR@10 per epoch."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], marker="o", ms=3)
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key in ("NDCG@10", "HR@10"):
        metric_axis.plot(epochs, [row["valid"][key] for row in history], marker="o", ms=3, label=key)
    metric_axis.set(xlabel="epoch", title="validation")
    metric_axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def plot_noise_robustness(
    curves: Dict[str, List[Tuple[float, float, float]]], drops: Dict[str, List[float]], metric: str, path: Path
) -> None:
    """One line per model: ``metric`` (mean ± std over seeds) against the fraction of noisy
    input items, and ``drops`` (%, one per fraction, from the clean data)."""
    figure, (metric_axis, drop_axis) = plt.subplots(1, 2, figsize=(10, 3.6))
    for model, points in curves.items():
        fractions, means, stds = zip(*points)
        metric_axis.errorbar(fractions, means, yerr=stds, marker="o", ms=3, capsize=3, label=model)
        drop_axis.plot(fractions, drops[model], marker="o", ms=3)
    metric_axis.set(xlabel="fraction of noisy input items", ylabel=f"test {metric}", title=metric)
    drop_axis.set(xlabel="fraction of noisy input items", ylabel="relative drop (%)", title="drop vs clean")
    metric_axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def plot_sweeps(
    sweeps: Dict[str, List[Tuple[float, float, float]]],
    metric: str,
    path: Path,
    reference: Optional[Tuple[str, float]] = None,
) -> None:
    """One panel per swept hyperparameter: ``metric`` (mean ± std over seeds) against its value;
    ``reference`` (label, value), e.g. the best baseline, as a dashed line."""
    figure, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 3.6), squeeze=False)
    for axis, (name, points) in zip(axes[0], sweeps.items()):
        values, means, stds = zip(*points)
        axis.errorbar(values, means, yerr=stds, marker="o", ms=3, capsize=3, label="IGR-SR")
        if reference is not None:
            axis.axhline(reference[1], color="gray", linestyle="--", label=reference[0])
            axis.legend()
        axis.set(xlabel=name, ylabel=f"test {metric}", title=f"IGR-SR: {name}")
        axis.set_xticks(values)
    figure.tight_layout()
    save_figure(figure, path)
