"""Writing an import into the catalog: new rows, exact duplicates, label events and splits, in one
transaction (flushed in batches), so a failed import leaves the catalog as it was."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from picsift.ingest.files import Probed
from picsift.ingest.splits import stratified_split
from picsift.store import Catalog
from picsift.store.catalog import declare_classes
from picsift.store.schema import Image, ImportRecord, LabelEvent, utcnow

BATCH = 1000
T = TypeVar("T")


@dataclass
class Written:
    """What writing probed entries to the catalog did: rows added, duplicates, updates, unreadable and skipped files."""

    import_id: int | None = None
    added: int = 0
    duplicates: int = 0
    already_present: int = 0
    updated: int = 0
    labeled: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    splits: Counter[str] = field(default_factory=Counter)
    split_origins: Counter[str] = field(default_factory=Counter)
    classes: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Known:
    id: int
    sha256: str
    split: str | None


def known_paths(catalog: Catalog) -> tuple[dict[str, str], set[str]]:
    """(path -> sha256 of every row, URLs already downloaded successfully)."""
    with catalog.session() as s:
        rows = s.execute(select(Image.path, Image.sha256, Image.source, Image.source_kind, Image.readable))
        by_path, urls = {}, set()
        for path, sha, source, kind, readable in rows:
            by_path[path] = sha
            if kind == "url" and readable:
                urls.add(source)
    return by_path, urls


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), BATCH):
        yield items[i : i + BATCH]


def _metadata(p: Probed) -> dict[str, Any]:
    info = p.info
    return {
        "sha256": p.sha256,
        "byte_size": p.byte_size,
        "width": info.width if info else None,
        "height": info.height if info else None,
        "format": info.format[:16] if info else None,
        "mode": info.mode[:16] if info else None,
        "n_frames": info.n_frames if info else 1,
        "exif_time": info.exif_time if info else None,
        "exif_camera": info.exif_camera if info else None,
        "gps_lat": info.gps_lat if info else None,
        "gps_lon": info.gps_lon if info else None,
        "readable": p.readable,
        "error": None if p.readable else p.error,
    }


def write_import(
    catalog: Catalog,
    probed: Sequence[Probed],
    *,
    source: str,
    kind: str,
    annotator: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> Written:
    """Record one import: new images (unique, duplicates of known bytes, unreadable), updated rows for changed
    files, the classes their labels name and a label event per labelled image, all in one transaction."""
    out = Written()
    with catalog.session() as s:
        by_path, first_by_sha = _known_rows(s)
        record = ImportRecord(source=source, kind=kind)
        s.add(record)
        s.flush()
        out.import_id = record.id
        unique, duplicates, unreadable = _sort_probed(s, probed, by_path, first_by_sha, out)
        auto = stratified_split(
            _groups(p for p in unique if p.entry.split is None),
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
        )
        _declare_classes(s, probed)
        _insert_unique(s, unique, record.id, auto, first_by_sha, out)
        _insert_duplicates(s, duplicates, record.id, first_by_sha, out)
        for batch in _batches(unreadable):
            _insert(s, [_new_row(p, record.id, p.entry.split, p.entry.split_origin, out) for p in batch])
        _label_events(s, record.id, annotator)
        out.unreadable = [(p.entry.url or p.path, p.error or "unreadable") for p in unreadable]
    return out


def _known_rows(s: Session) -> tuple[dict[str, _Known], dict[str, _Known]]:
    """The catalog's images by path, and the first readable original of each content hash."""
    rows = s.execute(select(Image.id, Image.path, Image.sha256, Image.split, Image.readable, Image.duplicate_of))
    by_path: dict[str, _Known] = {}
    first_by_sha: dict[str, _Known] = {}
    for image_id, path, sha, split, readable, duplicate_of in rows:
        known = _Known(image_id, sha, split)
        by_path[path] = known
        if readable and duplicate_of is None and sha and sha not in first_by_sha:
            first_by_sha[sha] = known
    return by_path, first_by_sha


def _sort_probed(
    s: Session,
    probed: Sequence[Probed],
    by_path: dict[str, _Known],
    first_by_sha: dict[str, _Known],
    out: Written,
) -> tuple[list[Probed], list[Probed], list[Probed]]:
    """Files already in the catalog are counted or updated in place; the rest are sorted into new unique images,
    copies of known bytes and unreadable files."""
    unique: list[Probed] = []
    duplicates: list[Probed] = []
    unreadable: list[Probed] = []
    seen_paths: set[str] = set()
    new_shas: set[str] = set()
    for p in probed:
        if p.path in seen_paths:
            out.skipped.append((p.path, "the same file was listed twice in this import"))
            continue
        seen_paths.add(p.path)
        old = by_path.get(p.path)
        if old is None and p.entry.url is not None and p.path != p.entry.url:
            old = by_path.get(p.entry.url)  # an earlier failed download of this URL: retried now
        if old is not None:
            _update_known(s, old, p, first_by_sha, out)
        elif not p.readable:
            unreadable.append(p)
        elif p.sha256 in first_by_sha or p.sha256 in new_shas:
            duplicates.append(p)
        else:
            new_shas.add(p.sha256)
            unique.append(p)
    return unique, duplicates, unreadable


def _update_known(s: Session, old: _Known, p: Probed, first_by_sha: dict[str, _Known], out: Written) -> None:
    if p.unchanged or (old.sha256 == p.sha256 and old.sha256):
        out.already_present += 1
    elif not p.sha256 and not old.sha256 and p.path == p.entry.url:
        out.already_present += 1  # a URL that failed before and fails again
    else:
        _update_row(s, old.id, p, first_by_sha)
        out.updated += 1


def _declare_classes(s: Session, probed: Sequence[Probed]) -> None:
    declare_classes(s, (p.entry.label for p in probed if p.entry.label))


def _insert_unique(
    s: Session,
    unique: list[Probed],
    import_id: int,
    auto: dict[str, str],
    first_by_sha: dict[str, _Known],
    out: Written,
) -> None:
    """Insert new images with their given split, else the seeded one; they become the originals of their hash."""
    for batch in _batches(unique):
        images = []
        for p in batch:
            split, origin = (p.entry.split, p.entry.split_origin) if p.entry.split else (auto[p.sha256], "auto")
            images.append(_new_row(p, import_id, split, origin, out))
        _insert(s, images)
    query = select(Image.path, Image.id).where(Image.import_id == import_id)
    new_ids = {path: image_id for path, image_id in s.execute(query)}
    for p in unique:
        first_by_sha[p.sha256] = _Known(new_ids[p.path], p.sha256, p.entry.split or auto[p.sha256])
    out.added = len(unique)


def _insert_duplicates(
    s: Session, duplicates: list[Probed], import_id: int, first_by_sha: dict[str, _Known], out: Written
) -> None:
    """Insert copies of known bytes pointing at their original, sharing its split unless one was given."""
    for batch in _batches(duplicates):
        images = []
        for p in batch:
            original = first_by_sha[p.sha256]
            split, origin = (p.entry.split, p.entry.split_origin) if p.entry.split else (original.split, "auto")
            row = _new_row(p, import_id, split, origin if split else None, out)
            row["duplicate_of"] = original.id
            images.append(row)
        _insert(s, images)
    out.duplicates = len(duplicates)


def _groups(items: Any) -> dict[str | None, list[str]]:
    groups: dict[str | None, list[str]] = {}
    for p in items:
        groups.setdefault(p.entry.label, []).append(p.sha256)
    return groups


def _new_row(p: Probed, import_id: int, split: str | None, origin: str | None, out: Written) -> dict[str, Any]:
    """The column values of a new `images` row (plain dicts: bulk inserts skip ORM bookkeeping)."""
    url = p.entry.url
    image = {
        "path": p.path,
        "source": url if url is not None else p.entry.source,
        "source_kind": "url" if url is not None else p.entry.source_kind,
        "label": p.entry.label,
        "label_version": 1 if p.entry.label else 0,
        "split": split,
        "split_origin": origin if split else None,
        "import_id": import_id,
        "excluded": False,
        "duplicate_of": None,
        "added_at": utcnow(),
        **_metadata(p),
    }
    if split and p.readable:
        out.splits[split] += 1
        out.split_origins[origin or "source"] += 1
    if p.entry.label and p.readable:
        out.labeled += 1
        out.classes.add(p.entry.label)
    return image


def _insert(s: Session, images: list[dict[str, Any]]) -> None:
    """One multi-row INSERT per batch: no ORM bookkeeping per image."""
    if images:
        s.execute(insert(Image), images)


def _label_events(s: Session, import_id: int, annotator: str) -> None:
    """The `import` label event of every labelled row this import added, in bulk."""
    now = utcnow()
    rows = s.execute(
        select(Image.id, Image.label).where(Image.import_id == import_id, Image.label.is_not(None)).order_by(Image.id)
    )
    events = [
        {
            "image_id": image_id,
            "label": label,
            "status": "accepted",
            "origin": "import",
            "annotator": annotator,
            "confidence": None,
            "created_at": now,
        }
        for image_id, label in rows
    ]
    for batch in _batches(events):
        s.execute(insert(LabelEvent), list(batch))


def _update_row(s: Session, image_id: int, p: Probed, first_by_sha: dict[str, _Known]) -> None:
    """The file at a known path changed (or a failed download now succeeded): refresh its metadata."""
    image = s.get(Image, image_id)
    if image is None:
        return
    if image.duplicate_of is None and image.sha256:
        # It was the first copy of its old bytes: the next copy takes its place.
        copies = list(s.scalars(select(Image).where(Image.duplicate_of == image_id).order_by(Image.id)))
        if copies:
            copies[0].duplicate_of = None
            for other in copies[1:]:
                other.duplicate_of = copies[0].id
            first_by_sha[image.sha256] = _Known(copies[0].id, image.sha256, copies[0].split)
        elif first_by_sha.get(image.sha256, _Known(-1, "", None)).id == image_id:
            del first_by_sha[image.sha256]
    for key, value in _metadata(p).items():
        setattr(image, key, value)
    image.path = p.path
    original = first_by_sha.get(p.sha256)
    image.duplicate_of = original.id if p.readable and original and original.id != image_id else None
    if p.readable and image.duplicate_of is None and p.sha256 not in first_by_sha:
        first_by_sha[p.sha256] = _Known(image_id, p.sha256, image.split)
