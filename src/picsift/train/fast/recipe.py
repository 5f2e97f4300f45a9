"""The fast recipe's settings as one typed, frozen dataclass: every knob with its unit and default.

`FastRecipe.from_params(cfg.model_params)` reads the mapping a user writes under `model_params:` in YAML or as
`--param KEY=VALUE`: an unknown key is refused with the nearest known one ("did you mean 'prune'?"), a value of
the wrong kind or out of range is refused naming its key. A field left None is chosen by the recipe from the
data, the input size or the time budget (its comment says how).

"Progress" below is the schedule's p in [0, 1]: max(steps done / steps planned, time used / time budget).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from picsift.errors import ConfigError
from picsift.train.fast.params import flag, number, stages, whole, whole_list
from picsift.train.settings import refuse_unknown

Stages = tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class FastRecipe:
    """Every setting of the fast recipe (defaults: the recipe as measured in the README's *Training speed*)."""

    # The network (FastCNN constructor arguments; None leaves the argument out, so saved runs rebuild as they were).
    widths: tuple[int, ...] | None = None  # channels per block; None: 64/256/256, 0.75x below 10k images, 0.5x below
    # 2k, the last widened for many classes, 1.5x under a budget holding 9+ passes over 10k+ images
    depth: int | None = None  # blocks, each halving the side; None: 3 at 32 px, one more per doubling of the input
    pool_first: int | None = None  # the last N blocks max-pool before their first convolution; None: 0
    third_conv: int | None = None  # the last N blocks get a third convolution at their pooled size; None: 0
    activation: str | None = None  # "gelu" or "silu"; None: gelu

    # Augmentation, per image and batch.
    translate: int | None = None  # random shift in pixels (reflect padding); None: 2 from 24 px inputs up, else 1
    jitter: float = 0.0  # brightness shift and contrast factor 1 +- jitter, in units of the data's std; 0: off

    # Schedules over progress.
    resize: Stages | None = None  # ((until, side px), ...): downscale batches while progress < until; None: the
    # single stage (low_res_until, low_res_size)
    low_res_until: float | None = None  # progress until which batches are downscaled; None: 0.5 under a budget, else 0
    low_res_size: int | None = None  # side in px of downscaled batches; None: 3/4 of the input, a multiple of 8
    prune: float | None = None  # share in [0, 1) of well-learned examples that sit an epoch out; None: 0.5 under a
    # budget, else 0 (off)
    prune_until: float = 0.85  # progress from which every example trains again
    freeze: Stages = ()  # ((from, blocks), ...): from progress `from` the first `blocks` blocks stop learning; (): off
    whiten_bias_until: float = 3 / 8  # progress until which the whitening bias learns, then freezes

    # Optimisers (a summed loss: the SGD learning rates are per example).
    filter_lr: float = 0.24  # conv filters' step per update, an angle (filters keep a fixed norm), at batch
    # reference_batch, scaled by sqrt(batch / reference_batch); TrainConfig.lr rescales every rate by lr / filter_lr
    filter_momentum: float = 0.6  # Nesterov momentum of the filters' update, in [0, 1)
    bias_lr: float = 0.053  # BatchNorm shifts' and whitening bias' SGD rate, per example
    head_lr: float = 0.67  # the linear head's SGD rate, per example
    momentum: float = 0.85  # Nesterov momentum of the SGD groups, in [0, 1)
    wd_per_example: float = 2e-6  # weight decay per example of the batch (times the batch size per step)
    warmup: float = 0.02  # share of progress of the linear warm-up, in [0, 1)
    reference_batch: int = 2000  # images per step at which filter_lr holds as given

    # Runtime.
    amp: bool = True  # bf16 autocast, where TrainConfig.amp allows it too (data with empty patch directions: fp32)
    lookahead: bool = True  # weight averaging every 5 steps, pulling harder as training ends
    compile: bool | Literal["auto"] = "auto"  # torch.compile the training step; auto: on CUDA, budget 2 min or more
    threads: int | None = None  # CPU threads; None: the free cores (or PICSIFT_THREADS)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> FastRecipe:
        """The recipe with the settings in `params` (`TrainConfig.model_params`) over its defaults.

        Raises ConfigError for an unknown key (with a "did you mean"), or a value of the wrong kind or range.
        `whiten_bias_fraction` is another name for `whiten_bias_until`.
        """
        given = dict(params or {})
        for alias, name in _ALIASES.items():
            if alias in given:
                if name in given:
                    raise ConfigError(f"fastcnn model_params: give {name} or {alias} (the same setting), not both")
                given[name] = given.pop(alias)
        refuse_unknown("fastcnn", given, KNOWN)
        return cls(**{key: _READERS[key](key, value) for key, value in given.items()})

    def shape_kwargs(self) -> dict[str, Any]:
        """The network settings other than widths that were given (not None), as FastCNN keyword arguments."""
        given = {"depth": self.depth, "pool_first": self.pool_first, "third_conv": self.third_conv}
        return {
            **{key: value for key, value in given.items() if value is not None},
            **({"activation": self.activation} if self.activation is not None else {}),
        }


def _compile_mode(key: str, value: Any) -> bool | Literal["auto"]:
    mode = {"true": True, "false": False, "auto": "auto"}.get(value, value) if isinstance(value, str) else value
    if mode == "auto" or isinstance(mode, bool):
        return mode
    raise ConfigError(f"fastcnn model_params {key}: expected true, false or auto, got {value!r}")


# Momenta and the warm-up are fractions, weight decay may be 0; the other rates divide or scale, so must be positive.
_fraction = partial(number, at_least=0.0, below=1.0)
_positive = partial(number, above=0.0)
_READERS: dict[str, Callable[[str, Any], Any]] = {
    "widths": whole_list,
    "depth": whole,
    "pool_first": whole,
    "third_conv": whole,
    "activation": lambda key, value: str(value),
    "translate": whole,
    "jitter": number,
    "resize": partial(stages, pair="[until, size]", example="[[0.5, 24]]"),
    "low_res_until": number,
    "low_res_size": whole,
    "prune": _fraction,
    "prune_until": partial(number, at_least=0.0),
    "freeze": partial(stages, pair="[from, blocks]", example="[[0.5, 1], [0.85, 2]]"),
    "whiten_bias_until": _positive,
    "filter_lr": _positive,
    "filter_momentum": _fraction,
    "bias_lr": _positive,
    "head_lr": _positive,
    "momentum": _fraction,
    "wd_per_example": partial(number, at_least=0.0),
    "warmup": _fraction,
    "reference_batch": partial(whole, above=0.0),
    "amp": flag,
    "lookahead": flag,
    "compile": _compile_mode,
    "threads": whole,
}
_ALIASES = {"whiten_bias_fraction": "whiten_bias_until"}
KNOWN = frozenset(f.name for f in dataclasses.fields(FastRecipe))  # the setting names (each has a reader)
