"""Training settings: :class:`TrainConfig` and the stage-2 changes of a model over its SASRec."""

from dataclasses import dataclass, replace
from typing import Literal, Optional

import torch

from ..config import Config, ConfigError, option


def resolve_device(name: str) -> str:
    """``"auto"`` as ``"cuda"`` where a GPU is visible, else ``"cpu"``; other names unchanged."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


# numpy's generator takes seeds up to 2**32 - 1.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig(Config):
    """How a model is trained.  The defaults are for real data (batch 256, lr 1e-3, AdamW,
    patience 10 on validation NDCG@10, as the SASRec/ICLRec line trains); the embedded
    synthetic data has its own (``SYNTHETIC_TRAINING``)."""

    epochs: int = option(200, "epoch limit", ge=1)
    batch_size: int = option(256, "training batch size", ge=1)
    lr: float = option(1e-3, "learning rate (AdamW)", gt=0)
    weight_decay: float = option(0.0, "AdamW weight decay", ge=0)
    patience: int = option(10, "epochs without validation NDCG@10 gain before stopping", ge=1)
    grad_clip: float = option(5.0, "gradient norm clip", gt=0)
    seed: int = option(42, "random seed (weights, batches, dropout)", ge=0, le=MAX_SEED)
    # Sequence models (SASRec, BERT4Rec, SSE-PT, LightRec) train on every max_len window of a
    # long history, not only its last: then they see every training target, as the models
    # trained on every prefix (IGR-SR, ReaRec) do.
    every_window: bool = option(
        False,
        "sequence models (sasrec, bert4rec, ssept, lightrec) train on every max-len window of a long "
        "history, not only its last, so they see every training target as the prefix-trained models do",
    )
    # Reduced precision changes results (so it is part of the run key); compiling does not.
    precision: Literal["fp32", "bf16", "fp16"] = option(
        "fp32",
        "training and evaluation scores under torch.autocast in bf16 or fp16 (fp16 with a gradient scaler); "
        "weights, optimizer state and ranks stay fp32",
    )
    compile: bool = option(False, "torch.compile the training step", runtime=True)
    log_every: int = option(
        50, "steps between reads of the loss on the host (its value on the bar, non-finite check)", ge=1, runtime=True
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...", runtime=True)
    eval_batch_size: Optional[int] = option(
        None, "users per evaluation batch (default: as many as 256 MiB of scores hold)", ge=1, runtime=True
    )
    progress: bool = option(True, "progress bars", runtime=True)

    def check(self) -> None:
        if self.lr * self.weight_decay >= 1:
            # AdamW multiplies every weight by 1 - lr * weight_decay each step.
            raise ConfigError(
                "weight_decay", f"times the learning rate must be < 1, got {self.weight_decay!r} with lr {self.lr!r}"
            )
        try:
            device = torch.device(resolve_device(self.device))
        except RuntimeError:
            raise ConfigError("device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None
        object.__setattr__(self, "device", str(device))


@dataclass(frozen=True)
class Stage2Config(Config):
    """What a stage-2 model (IGR-SR) over its trained SASRec changes of the training settings;
    unset, it trains as its SASRec did.  LightRec, whose codebooks are new parameters, keeps
    the common settings (``ModelEntry.stage2_settings``)."""

    stage2_lr: Optional[float] = option(None, "learning rate of IGR-SR's stage 2 over its SASRec (default --lr)", gt=0)
    stage2_epochs: Optional[int] = option(
        None, "epoch limit of IGR-SR's stage 2 over its SASRec (default --epochs)", ge=1
    )

    def changes(self) -> dict:
        """The settings it changes, named as in :class:`TrainConfig` (what reports list)."""
        changes = {"lr": self.stage2_lr, "epochs": self.stage2_epochs}
        return {name: value for name, value in changes.items() if value is not None}

    def apply(self, config: TrainConfig) -> TrainConfig:
        return replace(config, **self.changes())


# The embedded synthetic dataset is small: a larger step and less patience bring every model
# to convergence within a few CPU minutes.  These apply where an option is not given.
SYNTHETIC_TRAINING = {"lr": 3e-3, "batch_size": 128, "patience": 3, "stage2_lr": 1e-3}
