"""Whether a saved finding still holds for the catalog as it is now (`picsift clean --apply` acts on findings.json,
which may predate later edits: a relabel, an exclusion, a removed image, a fixed file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from picsift.curate.findings import Finding

RELABELLED = "relabelled since `picsift clean` ran"
READABLE_AGAIN = "readable again since `picsift clean` ran"
KEEPER_GONE = "the copy to keep was excluded or removed since `picsift clean` ran, and one copy must stay"
DUPLICATE_GROUPS = ("exact_duplicate", "near_duplicate")


class ImageNow(Protocol):
    """What freshness needs of an image's current catalog row (`ImageRow` has it)."""

    @property
    def label(self) -> str | None: ...
    @property
    def readable(self) -> bool: ...
    @property
    def excluded(self) -> bool: ...


@dataclass(frozen=True)
class Freshness:
    """Findings split by whether they still hold: `current` (a duplicate group whose kept copy is gone comes back
    with its first remaining copy as the one to keep), `skipped` [(finding, reason)] and `rekept`, how many
    duplicate groups now keep another copy."""

    current: list[Finding]
    skipped: list[tuple[Finding, str]]
    rekept: int


def _label_now_differs(f: Finding, row: ImageNow) -> bool:
    """A label issue about the given label, or a class outlier about its class, whose image is labelled otherwise."""
    about = f.details.get("given_label") if f.kind == "label_issue" else f.details.get("class")
    return about is not None and row.label != about


def _regrouped(f: Finding, rows: Mapping[int, ImageNow]) -> Finding | str:
    """A duplicate group as it stands: unchanged while its kept copy (first id) is in and included; else the
    remaining included copies with the first as the one to keep, or KEEPER_GONE when fewer than two remain."""
    keeper = rows.get(f.image_ids[0])
    if keeper is not None and not keeper.excluded:
        return f
    left = tuple(i for i in f.image_ids[1:] if i in rows and not rows[i].excluded)
    return replace(f, image_ids=left) if len(left) >= 2 else KEEPER_GONE


def check_findings(findings: list[Finding], rows: Mapping[int, ImageNow]) -> Freshness:
    """Split `findings` by whether they still hold for `rows` (image id -> its row now, excluded ones included;
    an id absent from `rows` was removed from the catalog).

    Skipped: a label_issue whose image's label is no longer the finding's `given_label`, a class_outlier whose
    image is no longer labelled its `class` (RELABELLED); an `unreadable` image that reads now (READABLE_AGAIN);
    a duplicate group whose kept copy is excluded or removed with fewer than two copies left (KEEPER_GONE).
    A removed or already excluded image of any other finding stays in `current`: the caller counts those.
    """
    current: list[Finding] = []
    skipped: list[tuple[Finding, str]] = []
    rekept = 0
    for f in findings:
        row = rows.get(f.image_ids[0]) if f.image_ids else None
        if f.kind in DUPLICATE_GROUPS:
            now = _regrouped(f, rows)
            if isinstance(now, str):
                skipped.append((f, now))
                continue
            rekept += now is not f
            current.append(now)
        elif row is not None and f.kind in ("label_issue", "class_outlier") and _label_now_differs(f, row):
            skipped.append((f, RELABELLED))
        elif row is not None and f.kind == "unreadable" and row.readable:
            skipped.append((f, READABLE_AGAIN))
        else:
            current.append(f)
    return Freshness(current, skipped, rekept)


def skipped_summary(skipped: list[tuple[Finding, str]]) -> list[dict[str, object]]:
    """[{"kind", "reason", "count", "image_ids"}] per (kind, reason), in first-seen order: what `--apply` left
    alone and why."""
    groups: dict[tuple[str, str], list[int]] = {}
    for f, reason in skipped:
        groups.setdefault((f.kind, reason), []).extend(f.image_ids)
    counts: dict[tuple[str, str], int] = {}
    for f, reason in skipped:
        counts[(f.kind, reason)] = counts.get((f.kind, reason), 0) + 1
    return [
        {"kind": kind, "reason": reason, "count": counts[(kind, reason)], "image_ids": sorted(set(ids))}
        for (kind, reason), ids in groups.items()
    ]
