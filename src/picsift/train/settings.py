"""Strict reading of a model's settings (`TrainConfig.model_params`): a key the model does not know is an error
that suggests the nearest known one, never silently ignored."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable

from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.suggest import closest_names

_TRAIN_SETTINGS = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "model_params"]


def refuse_unknown(owner: str, keys: Iterable[str], known: Collection[str]) -> None:
    """Raise ConfigError for the first of `keys` not in `known`.

    The message names the key and suggests the closest known one (difflib.get_close_matches); a key that is
    (close to) a TrainConfig field is pointed there instead, e.g. "unknown fastcnn setting 'prnue': did you mean
    'prune'? (known: ...)". `owner` names the model, e.g. "fastcnn".
    """
    for key in keys:
        if key not in known:
            raise ConfigError(unknown_setting(owner, key, known))


def unknown_setting(owner: str, key: str, known: Collection[str]) -> str:
    """The message for one unknown key (see `refuse_unknown`)."""
    listed = f"known: {', '.join(sorted(known))}" if known else f"{owner} takes no model_params"
    close = closest_names(key, sorted(known), n=1, cutoff=0.6)
    if close:
        return f"unknown {owner} setting {key!r}: did you mean {close[0]!r}? ({listed})"
    setting = closest_names(key, _TRAIN_SETTINGS, n=1, cutoff=0.6)
    if setting:
        return (
            f"unknown {owner} setting {key!r}: did you mean the training setting {setting[0]!r} "
            f"(top level of the config, not under model_params)? ({listed})"
        )
    return f"unknown {owner} setting {key!r} ({listed})"
