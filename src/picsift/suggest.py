""" "Did you mean" hints for a mistyped name."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches


def closest_names(name: str, names: Iterable[str], n: int = 3, cutoff: float = 0.5) -> list[str]:
    """Up to `n` of `names` closest to `name` by difflib's similarity ratio (at least `cutoff`), best first,
    compared case-blind: "FastCNN" finds "fastcnn", which a case-sensitive ratio scores 0.43."""
    by_lower: dict[str, str] = {}
    for known in names:
        by_lower.setdefault(known.lower(), known)
    return [by_lower[m] for m in get_close_matches(name.lower(), list(by_lower), n=n, cutoff=cutoff)]


def did_you_mean(name: str, names: Iterable[str], n: int = 3) -> str:
    """ "; did you mean a, b?" for the names closest to `name` (`closest_names`), or "" when none is close."""
    hint = closest_names(name, names, n=n)
    return f"; did you mean {', '.join(hint)}?" if hint else ""
