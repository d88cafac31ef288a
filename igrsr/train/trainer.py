"""Training with early stopping on validation NDCG@10, atomic checkpoints and resume."""

import math
import random
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..data import LengthBucketSampler, PrefixExamples, SequenceExamples, Split
from ..distributed import barrier, is_main_process, rank, shard, world_size
from ..eval import ranking_metrics
from ..eval.distributed import shared_model_ranks
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


PAST_LOADER_DRAWS = 2
# The models pick the real positions of a batch by boolean masks (shapes that depend on the
# data): traced into the graph instead of breaking it.
DYNAMO_SETTINGS = {"capture_dynamic_output_shape_ops": True}
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def training_examples(model: SequentialRecommender, split: Split, every_window: bool = False):
    if model.example_kind == "sequence":
        return SequenceExamples(split.train, model.max_len, every_window=every_window)
    return PrefixExamples(split.train, model.max_len)


def evaluate_model(
    model: SequentialRecommender, split: Split, part: str, config: TrainConfig, progress: bool = False
) -> Dict[str, float]:
    """Full-ranking metrics of ``model`` on ``part`` ("valid" or "test") of ``split``, its users
    shared among the ranks of a multi-process run, scores in ``config.precision``."""
    ranks = shared_model_ranks(
        model, split, part, device=config.device, batch_size=config.eval_batch_size, progress=progress,
        autocast_dtype=AUTOCAST_DTYPES[config.precision],
    )  # fmt: skip
    return ranking_metrics(ranks)


class TrainingLoss(nn.Module):
    """``model.training_loss`` as a module's forward: what DistributedDataParallel and
    torch.compile wrap."""

    def __init__(self, model: SequentialRecommender):
        super().__init__()
        self.model = model

    def forward(self, batch: Dict[str, torch.Tensor]):
        return self.model.training_loss(batch)


class Trainer:
    """Trains one model in ``run_dir``: ``last.pt`` each epoch, ``best.pt`` on improvement.

    In a multi-process run each rank trains on its shard of every epoch's batches
    (:func:`igrsr.distributed.shard`) under DistributedDataParallel; only rank 0 writes files.
    """

    def __init__(self, model: SequentialRecommender, split: Split, config: TrainConfig, run_dir: Path, title: str):
        self.model = model.to(config.device)
        self.split = split
        self.config = config
        self.device = torch.device(config.device)
        self.run_dir = Path(run_dir)
        self.title = title
        self.rank, self.world = rank(), world_size()
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        # One parameter group, not a bare list, so that a model with nothing to learn
        # (popularity) still gets an optimizer; the state dict has the same layout either way.
        self.optimizer = torch.optim.AdamW([{"params": self.trainable}], lr=config.lr, weight_decay=config.weight_decay)
        self.autocast_dtype = AUTOCAST_DTYPES[config.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.loader_generator = torch.Generator()
        self.examples = training_examples(model, split, config.every_window)
        self.sampler = LengthBucketSampler(self.examples.history_lengths(), config.batch_size, self.loader_generator)
        self.loss_step = self._loss_step(TrainingLoss(self.model))
        self.epoch = 0
        self.best_score = -1.0
        self.best_epoch = 0
        self.history = []
        self.elapsed = 0.0

    def _loss_step(self, loss: TrainingLoss) -> nn.Module:
        # A model without trainable weights (popularity) counts every batch on every rank
        # instead (see _epoch_batches): DistributedDataParallel needs something to reduce.
        if self.world > 1 and self.trainable:
            # Not every model uses every trainable weight in every step.
            loss = DistributedDataParallel(
                loss, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )  # fmt: skip
        if not self.config.compile:
            return loss
        for name, value in DYNAMO_SETTINGS.items():
            setattr(torch._dynamo.config, name, value)  # read when the step is first traced
        # Batches differ in size and in width (trimmed to their longest history): one graph
        # over symbolic shapes instead of a recompilation for each new shape.
        return torch.compile(loss, dynamic=True)

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def fit(self, resume: bool = False) -> Dict:
        """Train until early stopping or the epoch limit; return the run's summary."""
        # Each rank its own dropout; rank 0 draws what a single process draws.
        set_seed(self.config.seed + self.rank)
        self.loader_generator.manual_seed(self.config.seed)
        if resume and self.last_path.exists():
            self._restore()
            if is_main_process():
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

    def _epoch_batches(self) -> List[List[int]]:
        """This rank's batches of the next epoch; the global order is the sampler's."""
        # Iterating the DataLoader of earlier versions drew two seeds from the global RNG at
        # each epoch; drawing them still keeps the dropout of seeded runs as it was.
        torch.empty(PAST_LOADER_DRAWS, dtype=torch.int64).random_()
        batches = list(self.sampler)
        return shard(batches, self.rank, self.world) if self.trainable else batches

    def _to_device(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if self.device.type != "cuda":
            return {name: tensor.to(self.device) for name, tensor in batch.items()}
        return {name: tensor.pin_memory().to(self.device, non_blocking=True) for name, tensor in batch.items()}

    def _step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One optimizer step; the loss parts stay on the device (no host synchronization)."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss, parts = self.loss_step(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.trainable:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return parts

    def _train_one_epoch(self) -> float:
        """Mean training loss of the epoch's batches (over every rank's)."""
        self.model.train()
        batches = self._epoch_batches()
        show = self.config.progress and is_main_process()
        bar = tqdm(total=len(batches), desc=f"{self.title} epoch {self.epoch + 1}", leave=False, disable=not show)
        interval, interval_start, epoch_loss = {}, 1, 0.0
        for step, indices in enumerate(batches, start=1):
            parts = self._step(self._to_device(self.examples.batch(indices)))
            # float64 sums on the device, as adding each step's loss on the host would give.
            interval = {name: interval.get(name, 0.0) + value.double() for name, value in parts.items()}
            bar.update()  # every step (no device sync): long steps show progress before log_every
            if step % self.config.log_every == 0 or step == len(batches):
                sums = self._read_interval(interval, interval_start, step)
                epoch_loss += sums["loss"]
                steps = step - interval_start + 1
                bar.set_postfix({name: f"{value / (steps * self.world):.4f}" for name, value in sums.items()})
                interval, interval_start = {}, step + 1
        bar.close()
        return epoch_loss / max(len(batches) * self.world, 1)

    def _read_interval(self, sums: Dict[str, torch.Tensor], first: int, last: int) -> Dict[str, float]:
        """The loss parts of steps ``first..last`` summed over every rank, read once on the host;
        a non-finite one stops training on every rank, naming the epoch and steps."""
        total = torch.stack(list(sums.values()))
        if self.world > 1:
            dist.all_reduce(total)
        sums = dict(zip(sums, total.tolist()))
        if not all(math.isfinite(value) for value in sums.values()):
            raise FloatingPointError(
                f"{self.title}: non-finite loss {sums} (sums over the steps) in epoch {self.epoch + 1}, "
                f"steps {first}-{last}"
            )
        return sums

    def _record(self, train_loss: float, valid: Dict[str, float], seconds: float) -> None:
        self.history.append({"epoch": self.epoch, "train_loss": train_loss, "valid": valid, "seconds": seconds})
        improved = valid[SELECTION_METRIC] > self.best_score
        if improved:
            self.best_score, self.best_epoch = valid[SELECTION_METRIC], self.epoch
            if is_main_process():
                save_torch({"model": self.model.state_dict(), "epoch": self.epoch}, self.best_path)
        self._checkpoint()
        barrier()  # no rank reads best.pt before rank 0 has written it
        if not is_main_process():
            return
        plot_training_curves(self.history, self.run_dir / "curves.png", self.title)
        marker = " *" if improved else ""
        tqdm.write(
            f"{self.title} epoch {self.epoch}: loss {train_loss:.4f}  valid HR@10 {valid['HR@10']:.4f}"
            f"  NDCG@10 {valid['NDCG@10']:.4f}  ({seconds:.1f}s){marker}"
        )

    def _checkpoint(self) -> None:
        rng_states = [rng_state()]
        if self.world > 1:
            rng_states = [None] * self.world
            dist.all_gather_object(rng_states, rng_state())
        if not is_main_process():
            return
        save_torch(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch,
                "history": self.history,
                "elapsed": self.elapsed,
                "world_size": self.world,
                "rng": rng_states,
                "loader_rng": self.loader_generator.get_state(),
            },
            self.last_path,
        )

    def _restore(self) -> None:
        state = load_torch(self.last_path, map_location=self.config.device)
        written_by = state.get("world_size", 1)
        if written_by != self.world:
            raise ValueError(
                f"{self.last_path} was written by a run of {written_by} process(es), this one has {self.world}: "
                f"resume it with {written_by} (--nproc {written_by}), or train without --resume to start over"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state.get("scaler", {}))
        self.epoch = state["epoch"]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.history, self.elapsed = state["history"], state["elapsed"]
        # Checkpoints of older versions hold the one process's RNG state, not a list.
        rng = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        restore_rng_state(rng[self.rank])
        self.loader_generator.set_state(state["loader_rng"])

    def _summary(self, stopped_early: bool) -> Dict:
        """Reload the best epoch's weights, measure them on the test set and record the model's facts."""
        if self.best_path.exists():
            self.model.load_state_dict(load_torch(self.best_path, map_location=self.config.device)["model"])
        test = evaluate_model(
            self.model, self.split, "test", self.config, progress=self.config.progress and is_main_process()
        )
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
