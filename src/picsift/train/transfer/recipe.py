"""The transfer recipe's settings as one typed, frozen dataclass: every knob with its unit and default.

`TransferRecipe.from_params(cfg.model_params)` reads what a user writes under `model_params:` in YAML or as
`--param KEY=VALUE`: an unknown key is refused with the nearest known one, a value of the wrong kind or out of range
is refused naming its key. A field left None is chosen by the recipe (its comment says how). The TrainConfig
settings `--epochs`, `--batch-size`, `--lr`, `--weight-decay`, `--label-smoothing`, `--image-size` and `--amp`
apply here too and win over these defaults; `--augment` picks the fine-tuning augmentation (default: random
resized crop of 35-100% of the area, and horizontal flips).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from picsift.errors import ConfigError
from picsift.train.settings import refuse_unknown

OWNER = "transfer"
PROBE_CS = (0.003, 0.01, 0.03, 0.1)  # the probe's C grid; 0.01 won on hymenoptera (bench/pretrained_probe.py)
DEFAULT_C = 0.01


@dataclass(frozen=True)
class TransferRecipe:
    """Every setting of the transfer recipe: embeddings -> linear probe -> fine-tuning (LP-FT)."""

    # Input resolution.
    resolution: int | None = None  # input side in px; None: the weights' native size (224 for Lite0) for photos,
    # up to 4x the median side of small images, lowered until embedding train + val fits `embed_share` of a budget
    embed_share: float = 0.35  # share of a time budget that embedding train + val may take, in (0, 1]
    embed_backend: str = "auto"  # picsift.models.pretrained.EMBED_BACKENDS; auto: onnx on a CPU, bf16 on a CUDA GPU

    # Linear probe: standardised features, multinomial logistic regression (scikit-learn, L-BFGS).
    probe_c: float | None = None  # inverse L2 strength; None: the grid PROBE_CS by validation log-loss (0.01
    # without validation images)

    # Fine-tuning (starts from the probe's head folded into the model's classifier).
    finetune: bool = True  # False: the probe alone
    epochs: int | None = None  # fine-tuning epochs without a time budget; None: 3 (a budget decides with one)
    batch_size: int = 32  # images per step
    lr: float = 2e-4  # AdamW peak rate of the last stage and the 1x1 head convolution (per step)
    head_lr: float = 1e-3  # AdamW peak rate of the classifier
    lr_decay: float = 0.5  # each stage further down learns at this times the rate of the stage above, in (0, 1]
    train_stages: int | None = None  # the last N of the backbone's stages learn, the others (and the stem) stay
    # frozen and run without gradients; None: 3 on a CPU (most of the compute is in the early, high-resolution
    # stages), all on a GPU
    weight_decay: float = 0.01  # AdamW decoupled weight decay on weights of 2+ dimensions
    label_smoothing: float = 0.1  # share of the target spread over all classes, in [0, 1)
    warmup: float = 0.05  # share of progress of the linear warm-up of the cosine schedule, in [0, 1)
    amp: bool = True  # bf16 autocast where TrainConfig.amp allows it too (CPUs with native bf16; fp16/bf16 on GPUs)
    threads: int | None = None  # CPU threads; None: the free cores (or PICSIFT_THREADS)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> TransferRecipe:
        """The recipe with the settings in `params` (`TrainConfig.model_params`) over its defaults.

        Raises ConfigError for an unknown key (with a "did you mean"), or a value of the wrong kind or range.
        """
        given = dict(params or {})
        refuse_unknown(OWNER, given, KNOWN)
        return cls(**{key: _READERS[key](key, value) for key, value in given.items()})


def _number(
    key: str, value: Any, *, above: float | None = None, at_least: float | None = None, below: float | None = None,
    at_most: float | None = None,
) -> float:  # fmt: skip
    """`value` as a finite number within the given bounds; a ConfigError naming the key and the range otherwise."""
    try:
        parsed = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a whole number too large for a float
        parsed = math.nan
    checks = [(above, parsed > (above or 0)), (at_least, parsed >= (at_least or 0))]
    checks += [(below, parsed < (below or 0)), (at_most, parsed <= (at_most or 0))]
    if not math.isfinite(parsed) or not all(ok for bound, ok in checks if bound is not None):
        low = f"({above:g}" if above is not None else f"[{at_least:g}" if at_least is not None else "(-inf"
        high = f"{below:g})" if below is not None else f"{at_most:g}]" if at_most is not None else "inf)"
        raise ConfigError(f"{OWNER} model_params {key}: expected a number in {low}, {high}, got {value!r}")
    return parsed


def _whole(key: str, value: Any, at_least: int = 1) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())  # also NaN and infinity, which int() refuses
        or value < at_least
    ):
        raise ConfigError(f"{OWNER} model_params {key}: expected a whole number of {at_least} or more, got {value!r}")
    return int(value)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{OWNER} model_params {key}: expected true or false, got {value!r}")


def _backend(key: str, value: Any) -> str:
    from picsift.models.pretrained import EMBED_BACKENDS

    if value == "auto" or value in EMBED_BACKENDS:
        return str(value)
    raise ConfigError(f"{OWNER} model_params {key}: expected auto or one of {', '.join(EMBED_BACKENDS)}, got {value!r}")


_READERS: dict[str, Callable[[str, Any], Any]] = {
    "resolution": lambda k, v: _whole(k, v, at_least=32),
    "embed_share": lambda k, v: _number(k, v, above=0.0, at_most=1.0),
    "embed_backend": _backend,
    "probe_c": lambda k, v: _number(k, v, above=0.0),
    "finetune": _flag,
    "epochs": _whole,
    "batch_size": _whole,
    "lr": lambda k, v: _number(k, v, above=0.0),
    "head_lr": lambda k, v: _number(k, v, above=0.0),
    "lr_decay": lambda k, v: _number(k, v, above=0.0, at_most=1.0),
    "train_stages": _whole,
    "weight_decay": lambda k, v: _number(k, v, at_least=0.0),
    "label_smoothing": lambda k, v: _number(k, v, at_least=0.0, below=1.0),
    "warmup": lambda k, v: _number(k, v, at_least=0.0, below=1.0),
    "amp": _flag,
    "threads": _whole,
}
KNOWN = frozenset(f.name for f in dataclasses.fields(TransferRecipe))  # the setting names (each has a reader)
