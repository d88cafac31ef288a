"""Training curves as a PNG beside the run's JSON."""

from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    figure.savefig(path, dpi=110)
    plt.close(figure)
