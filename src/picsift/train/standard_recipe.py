"""The standard loop's settings (torchvision and timm backbones) as one typed, frozen dataclass.

They are TrainConfig fields (`--lr`, `--label-smoothing`, ...) with the loop's defaults filled in. The backbones
take no `model_params` (their builders have no extra constructor arguments), so any key there is refused with a
suggestion instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from picsift.config import TrainConfig
from picsift.distributed import per_process_batch
from picsift.train.settings import refuse_unknown

KNOWN_MODEL_PARAMS: frozenset[str] = frozenset()
DEFAULT_LABEL_SMOOTHING = 0.1
DEFAULT_BATCH_SIZE = 64
DEFAULT_EPOCHS = 10
BUDGET_EPOCHS = 1000  # planned under a time budget, which stops the run on time


@dataclass(frozen=True)
class StandardRecipe:
    """What the standard loop trains with, every default resolved."""

    optimizer: str  # "adamw" or "sgd" (Nesterov, momentum 0.9)
    lr: float  # peak learning rate of the schedule; default adamw 5e-4 with pretrained weights, else 2e-3,
    # sgd 0.01 with pretrained weights, else 0.1
    weight_decay: float  # on weights of 2+ dimensions only (not biases or norms); default adamw 0.05, sgd 5e-4
    label_smoothing: float  # share of the target spread over all classes, in [0, 1); default 0.1
    batch_size: int  # images per step per process (--batch-size); default 64 in all, split over the processes
    epochs: int  # planned epochs; default 10, or 1000 under a time budget (which stops the run)
    budget_s: float | None  # the time budget in seconds, or None

    @classmethod
    def from_config(cls, model: str, cfg: TrainConfig, world_size: int = 1) -> StandardRecipe:
        """The recipe for training `model` with `cfg` in `world_size` processes (torchrun): `--batch-size` is per
        process, as in PyTorch and Lightning; without it the default batch is split over the processes, so the
        same command trains the same schedule. Raises ConfigError for any key in cfg.model_params (the message
        suggests the training setting it may have meant)."""
        check_model_params(model, cfg.model_params)
        pretrained = bool(cfg.pretrained or cfg.weights)
        sgd = cfg.optimizer == "sgd"
        default_lr = (0.01 if pretrained else 0.1) if sgd else (5e-4 if pretrained else 2e-3)
        default_wd = 5e-4 if sgd else 0.05
        return cls(
            optimizer=cfg.optimizer,
            lr=cfg.lr or default_lr,
            weight_decay=cfg.weight_decay if cfg.weight_decay is not None else default_wd,
            label_smoothing=DEFAULT_LABEL_SMOOTHING if cfg.label_smoothing is None else cfg.label_smoothing,
            batch_size=cfg.batch_size or per_process_batch(DEFAULT_BATCH_SIZE, world_size),
            epochs=cfg.epochs or (BUDGET_EPOCHS if cfg.time_budget_min else DEFAULT_EPOCHS),
            budget_s=cfg.time_budget_min * 60 if cfg.time_budget_min else None,
        )


def check_model_params(model: str, params: dict[str, object]) -> None:
    """Raise ConfigError for a key in `params` that a torchvision or timm backbone does not take (any key)."""
    refuse_unknown(model, params, KNOWN_MODEL_PARAMS)
