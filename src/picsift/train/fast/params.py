"""Reading the fast recipe's `model_params` (a mapping a user writes in YAML or `--param KEY=VALUE`): each value
is checked for its kind and, where given, its range; a wrong one is a ConfigError that names the key, never a
traceback."""

from __future__ import annotations

import math
from typing import Any

from picsift.errors import ConfigError


def _number(
    key: str, value: Any, whole: bool, above: float | None = None, at_least: float | None = None,
    below: float | None = None,
) -> float:  # fmt: skip
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    in_range = (
        (above is None or number > above)
        and (at_least is None or number >= at_least)
        and (below is None or number < below)
    )
    if not math.isfinite(number) or (whole and not number.is_integer()) or not in_range:
        kind = "a whole number" if whole else "a number"
        if at_least is not None and below is not None:
            kind += f" in [{at_least:g}, {below:g})"
        elif above is not None:
            kind += f" above {above:g}"
        elif at_least is not None:
            kind += f" of {at_least:g} or more"
        raise ConfigError(f"fastcnn model_params {key}: expected {kind}, got {value!r}")
    return number


def param_float(params: dict[str, Any], key: str, default: float, **bounds: float) -> float:
    """params[key] as a finite number within the optional bounds (`above`, `at_least`, `below`), or `default`
    when the key is absent."""
    return _number(key, params[key], False, **bounds) if key in params else default


def param_int(params: dict[str, Any], key: str, default: int, **bounds: float) -> int:
    """params[key] as a whole number within the optional bounds, or `default` when the key is absent."""
    return int(_number(key, params[key], True, **bounds)) if key in params else default


def param_ints(params: dict[str, Any], key: str) -> list[int]:
    """params[key] as a non-empty list of whole numbers, e.g. widths [64, 256, 256]."""
    value = params[key]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"fastcnn model_params {key}: expected a list of whole numbers, e.g. [64, 256, 256], got {value!r}"
        )
    return [int(_number(key, v, whole=True)) for v in value]


def param_stages(params: dict[str, Any], key: str, pair: str, example: str) -> list[tuple[float, int]]:
    """params[key] as a list of (number, whole number) pairs, e.g. the schedule `resize: [[0.5, 24]]` (may be
    empty); `pair` names the two parts for the error message, e.g. "[until, size]"."""
    value = params[key]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        raise ConfigError(f"fastcnn model_params {key}: expected a list of {pair} pairs, e.g. {example}, got {value!r}")
    return [(_number(key, first, whole=False), int(_number(key, second, whole=True))) for first, second in value]
