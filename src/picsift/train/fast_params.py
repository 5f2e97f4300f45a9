"""Reading the fast recipe's `model_params` (a mapping a user writes in YAML or `--param KEY=VALUE`): each value
is checked for its kind, and a wrong one is a ConfigError that names the key, never a traceback."""

from __future__ import annotations

import math
from typing import Any

from picsift.errors import ConfigError


def _number(key: str, value: Any, whole: bool) -> float:
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (whole and not number.is_integer()):
        raise ConfigError(f"fastcnn model_params {key}: expected {'a whole' if whole else 'a'} number, got {value!r}")
    return number


def param_float(params: dict[str, Any], key: str, default: float) -> float:
    """params[key] as a finite number, or `default` when the key is absent."""
    return _number(key, params[key], whole=False) if key in params else default


def param_int(params: dict[str, Any], key: str, default: int) -> int:
    """params[key] as a whole number, or `default` when the key is absent."""
    return int(_number(key, params[key], whole=True)) if key in params else default


def param_ints(params: dict[str, Any], key: str) -> list[int]:
    """params[key] as a non-empty list of whole numbers, e.g. widths [64, 256, 256]."""
    value = params[key]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"fastcnn model_params {key}: expected a list of whole numbers, e.g. [64, 256, 256], got {value!r}"
        )
    return [int(_number(key, v, whole=True)) for v in value]
