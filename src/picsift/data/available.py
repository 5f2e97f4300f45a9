"""Catalog images whose file vanished or stopped decoding since import: set them aside and say so in one line.

Every stage that reads the catalog's image files (train, evaluate, clean, features, autolabel, the label app,
export's parity samples) goes through `split_present` (does the file still exist and can it be read?) and,
where it decodes, `decode_available` (does it still decode?). What they set aside is a list of
`SkippedImage`; `skipped_message` turns it into the one line the CLI prints, and `check_strict` turns it into
a `MissingImagesError` when the user asked for `--strict`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from picsift.data.cache import DecodedCache
from picsift.data.presence import MISSING, file_problem
from picsift.data.storage import is_remote, missing_objects
from picsift.errors import DatasetError

log = logging.getLogger("picsift.data")

UNDECODABLE = "no longer decodes"
SHOWN = 3  # paths named in the one-line message; `picsift status` lists them all


class CatalogImage(Protocol):
    """What the helpers need of a catalog row (picsift.store.ImageRow has it)."""

    @property
    def id(self) -> int:
        """The catalog image id."""

    @property
    def path(self) -> str:
        """The image file's path."""

    @property
    def sha256(self) -> str:
        """The hex sha256 of the image's bytes."""


R = TypeVar("R", bound=CatalogImage)


@dataclass(frozen=True)
class SkippedImage:
    """A catalog image a stage could not use. `kind`: MISSING (gone or unreadable) or UNDECODABLE;
    `reason`: the specific cause, e.g. "missing on disk" or "truncated image: ..."."""

    image_id: int
    path: str
    kind: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """{image_id, path, kind, reason} as plain JSON values."""
        return {"image_id": self.image_id, "path": self.path, "kind": self.kind, "reason": self.reason}


class MissingImagesError(DatasetError):
    """Under --strict: some catalog images are missing on disk or no longer decode. `skipped` lists them."""

    def __init__(self, message: str, skipped: Sequence[SkippedImage]) -> None:
        super().__init__(message)
        self.skipped = list(skipped)


def split_present(rows: Sequence[R]) -> tuple[list[R], list[SkippedImage]]:
    """rows -> (rows whose file exists and is readable, in order; a SkippedImage for each of the others).

    One stat() per row (for objects in object storage, one listing per folder): cheap next to decoding, and it catches files moved or deleted since import even
    when their pixels are still in the decoded-image cache (so every stage agrees with `picsift status`).
    """
    present: list[R] = []
    skipped: list[SkippedImage] = []
    remote = missing_objects(r.path for r in rows if is_remote(r.path))  # one listing per folder, not per object
    for r in rows:
        why = remote.get(r.path) if is_remote(r.path) else file_problem(r.path)
        if why is None:
            present.append(r)
        else:
            skipped.append(SkippedImage(r.id, r.path, MISSING, why))
    return present, skipped


@dataclass
class Decoded(Generic[R]):
    """The rows that decoded, their pixels uint8 (N, S, S, 3) in the same order, and those set aside."""

    rows: list[R]
    x: np.ndarray
    skipped: list[SkippedImage]


def decode_available(cache_dir: Path, rows: Sequence[R], size: int, description: str) -> Decoded[R]:
    """Decode `rows` at `size` (through the decoded-image cache), setting aside files that are missing on disk
    and files that exist but no longer decode (changed or corrupted after import)."""
    present, skipped = split_present(rows)
    x, failed = DecodedCache(cache_dir, size).get_available([(r.sha256, r.path) for r in present], description)
    kept = [r for i, r in enumerate(present) if i not in failed]
    skipped += [SkippedImage(present[i].id, present[i].path, UNDECODABLE, why) for i, why in failed.items()]
    return Decoded(kept, x, skipped)


def _names(items: Sequence[SkippedImage], with_reason: bool) -> str:
    shown = [f"{s.path} ({s.reason})" if with_reason else s.path for s in items[:SHOWN]]
    more = len(items) - SHOWN
    return ", ".join(shown) + (f", ... and {more} more" if more > 0 else "")


def skipped_message(skipped: Sequence[SkippedImage], *, strict: bool = False) -> str:
    """One line: how many images were set aside, which (the first few) and why, e.g.
    "3 images are missing on disk and were skipped: a.png, b.png, c.png, ... and 2 more (run `picsift status`)".
    With `strict`, the same line says they stopped the command instead. "" when nothing was skipped."""
    if not skipped:
        return ""
    gone = [s for s in skipped if s.kind == MISSING]
    bad = [s for s in skipped if s.kind != MISSING]
    parts: list[str] = []
    if gone:
        n = len(gone)
        other = any(s.reason != MISSING for s in gone)
        what = "missing on disk or unreadable" if other else "missing on disk"
        verb = "is" if n == 1 else "are"
        done = "" if strict else (" and was skipped" if n == 1 else " and were skipped")
        parts.append(f"{n} image{'' if n == 1 else 's'} {verb} {what}{done}: {_names(gone, other)}")
    if bad:
        n = len(bad)
        verb = "no longer decodes" if n == 1 else "no longer decode"
        done = "" if strict else (" and was skipped" if n == 1 else " and were skipped")
        parts.append(f"{n} image{'' if n == 1 else 's'} {verb}{done}: {_names(bad, True)}")
    tail = "run `picsift status`" + ("; without --strict they are skipped" if strict else "")
    return "; ".join(parts) + f" ({tail})"


def check_strict(skipped: Sequence[SkippedImage], strict: bool, stage: str) -> None:
    """Raise MissingImagesError (exit code 2 in the CLI) when `strict` and anything was skipped; else log it."""
    if not skipped:
        return
    if strict:
        raise MissingImagesError(skipped_message(skipped, strict=True), skipped)
    log.info("%s: %s", stage, skipped_message(skipped))


def skipped_dicts(skipped: Sequence[SkippedImage]) -> list[dict[str, Any]]:
    """JSON-ready form of a skipped list (for run.json, metrics.json, bundle.json and --json output)."""
    return [s.to_dict() for s in skipped]
