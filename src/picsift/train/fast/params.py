"""Readers for the values of the fast recipe's settings (`model_params`, written in YAML or as `--param KEY=VALUE`):
each checks its value's kind and, where given, its range; a wrong one is a ConfigError that names the key, never a
traceback. `recipe.FastRecipe.from_params` applies them."""

from __future__ import annotations

import math
from typing import Any

from picsift.errors import ConfigError


def number(
    key: str, value: Any, whole: bool = False, above: float | None = None, at_least: float | None = None,
    below: float | None = None,
) -> float:  # fmt: skip
    """`value` as a finite number (a whole one if `whole`) within the optional bounds: `above` (exclusive),
    `at_least` (inclusive), `below` (exclusive)."""
    try:
        parsed = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a whole number too large for a float
        parsed = math.nan
    in_range = (
        (above is None or parsed > above)
        and (at_least is None or parsed >= at_least)
        and (below is None or parsed < below)
    )
    if not math.isfinite(parsed) or (whole and not parsed.is_integer()) or not in_range:
        kind = "a whole number" if whole else "a number"
        if at_least is not None and below is not None:
            kind += f" in [{at_least:g}, {below:g})"
        elif above is not None:
            kind += f" above {above:g}"
        elif at_least is not None:
            kind += f" of {at_least:g} or more"
        raise ConfigError(f"fastcnn model_params {key}: expected {kind}, got {value!r}")
    return parsed


def whole(key: str, value: Any, **bounds: float) -> int:
    """`value` as a whole number within the optional bounds (see `number`)."""
    return int(number(key, value, True, **bounds))


def whole_list(key: str, value: Any) -> tuple[int, ...]:
    """`value` as a non-empty list of whole numbers, e.g. widths [64, 256, 256]."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"fastcnn model_params {key}: expected a list of whole numbers, e.g. [64, 256, 256], got {value!r}"
        )
    return tuple(whole(key, v) for v in value)


def stages(key: str, value: Any, pair: str, example: str) -> tuple[tuple[float, int], ...]:
    """`value` as a list of (number, whole number) pairs, e.g. the schedule `resize: [[0.5, 24]]` (may be empty);
    `pair` names the two parts for the error message, e.g. "[until, size]"."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        raise ConfigError(f"fastcnn model_params {key}: expected a list of {pair} pairs, e.g. {example}, got {value!r}")
    return tuple((number(key, first), whole(key, second)) for first, second in value)


def flag(key: str, value: Any) -> bool:
    """`value` as true or false (YAML's true/false/yes/no, or 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"fastcnn model_params {key}: expected true or false, got {value!r}")
