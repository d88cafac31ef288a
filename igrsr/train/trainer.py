"""Training with early stopping on validation NDCG@10, atomic checkpoints and resume."""

import random
import time
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data import LengthBucketSampler, PrefixExamples, SequenceExamples, Split, collate_trimmed
from ..eval import model_ranks, ranking_metrics
from ..models import SequentialRecommender
from .checkpoint import load_torch, save_torch
from .config import TrainConfig
from .plots import plot_training_curves

SELECTION_METRIC = "NDCG@10"


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> Dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng_state(state: Dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def training_examples(model: SequentialRecommender, split: Split, every_window: bool = False):
    if model.example_kind == "sequence":
        return SequenceExamples(split.train, model.max_len, every_window=every_window)
    return PrefixExamples(split.train, model.max_len)


def evaluate_model(
    model: SequentialRecommender, split: Split, part: str, config: TrainConfig, progress: bool = False
) -> Dict[str, float]:
    """Full-ranking metrics of ``model`` on ``part`` ("valid" or "test") of ``split``."""
    ranks = model_ranks(model, split, part, device=config.device, batch_size=config.eval_batch_size, progress=progress)
    return ranking_metrics(ranks)


class Trainer:
    """Trains one model in ``run_dir``: ``last.pt`` each epoch, ``best.pt`` on improvement."""

    def __init__(self, model: SequentialRecommender, split: Split, config: TrainConfig, run_dir: Path, title: str):
        self.model = model.to(config.device)
        self.split = split
        self.config = config
        self.run_dir = Path(run_dir)
        self.title = title
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        # One parameter group, not a bare list, so that a model with nothing to learn
        # (popularity) still gets an optimizer; the state dict has the same layout either way.
        self.optimizer = torch.optim.AdamW(
            [{"params": self.trainable}], lr=config.lr, weight_decay=config.weight_decay
        )
        self.loader_generator = torch.Generator()
        examples = training_examples(model, split, config.every_window)
        self.loader = DataLoader(
            examples,
            batch_sampler=LengthBucketSampler(examples.history_lengths(), config.batch_size, self.loader_generator),
            collate_fn=collate_trimmed,
        )
        self.epoch = 0
        self.best_score = -1.0
        self.best_epoch = 0
        self.history = []
        self.elapsed = 0.0

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def fit(self, resume: bool = False) -> Dict:
        """Train until early stopping or the epoch limit; return the run's summary."""
        set_seed(self.config.seed)
        self.loader_generator.manual_seed(self.config.seed)
        if resume and self.last_path.exists():
            self._restore()
            print(f"resuming {self.title} after epoch {self.epoch} from {self.last_path}")
        stopped_early = self._patience_exhausted()
        while self.epoch < self.config.epochs and not stopped_early:
            started = time.perf_counter()
            train_loss = self._train_one_epoch()
            valid = evaluate_model(self.model, self.split, "valid", self.config)
            self.epoch += 1
            self.elapsed += time.perf_counter() - started
            self._record(train_loss, valid, time.perf_counter() - started)
            stopped_early = self._patience_exhausted()
        return self._summary(stopped_early)

    def _patience_exhausted(self) -> bool:
        return self.epoch > 0 and self.epoch - self.best_epoch >= self.config.patience

    def _train_one_epoch(self) -> float:
        self.model.train()
        device = torch.device(self.config.device)
        total, batches = 0.0, 0
        bar = tqdm(
            self.loader,
            desc=f"{self.title} epoch {self.epoch + 1}",
            leave=False,
            disable=not self.config.progress,
        )
        for batch in bar:
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            loss, parts = self.model.training_loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.title}: non-finite loss {parts} at epoch {self.epoch + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.trainable:
                torch.nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip)
            self.optimizer.step()
            total += parts["loss"]
            batches += 1
            bar.set_postfix({name: f"{value:.4f}" for name, value in parts.items()})
        return total / max(batches, 1)

    def _record(self, train_loss: float, valid: Dict[str, float], seconds: float) -> None:
        self.history.append({"epoch": self.epoch, "train_loss": train_loss, "valid": valid, "seconds": seconds})
        improved = valid[SELECTION_METRIC] > self.best_score
        if improved:
            self.best_score, self.best_epoch = valid[SELECTION_METRIC], self.epoch
            save_torch({"model": self.model.state_dict(), "epoch": self.epoch}, self.best_path)
        self._checkpoint()
        plot_training_curves(self.history, self.run_dir / "curves.png", self.title)
        marker = " *" if improved else ""
        tqdm.write(
            f"{self.title} epoch {self.epoch}: loss {train_loss:.4f}  valid HR@10 {valid['HR@10']:.4f}"
            f"  NDCG@10 {valid['NDCG@10']:.4f}  ({seconds:.1f}s){marker}"
        )

    def _checkpoint(self) -> None:
        save_torch(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch,
                "history": self.history,
                "elapsed": self.elapsed,
                "rng": rng_state(),
                "loader_rng": self.loader_generator.get_state(),
            },
            self.last_path,
        )

    def _restore(self) -> None:
        state = load_torch(self.last_path, map_location=self.config.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = state["epoch"]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.history, self.elapsed = state["history"], state["elapsed"]
        restore_rng_state(state["rng"])
        self.loader_generator.set_state(state["loader_rng"])

    def _summary(self, stopped_early: bool) -> Dict:
        """Reload the best epoch's weights, measure them on the test set and record the model's facts."""
        if self.best_path.exists():
            self.model.load_state_dict(load_torch(self.best_path, map_location=self.config.device)["model"])
        test = evaluate_model(self.model, self.split, "test", self.config, progress=self.config.progress)
        best_row = next((row for row in self.history if row["epoch"] == self.best_epoch), None)
        return {
            "train": self.config.to_dict(),
            "valid": best_row["valid"] if best_row else None,
            "test": test,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "stopped": "early" if stopped_early else "epoch_limit",
            "seconds_per_epoch": self.elapsed / max(self.epoch, 1),
            "train_seconds": self.elapsed,
            "history": self.history,
            "facts": self.model.facts(),
        }
