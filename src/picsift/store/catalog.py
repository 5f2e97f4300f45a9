"""The catalog API: every other stage reads and writes images, labels and exclusions through here."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from sqlalchemy import create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from picsift.errors import (
    ConflictError,
    DiskError,
    LabelError,
    NotFoundError,
    PicsiftError,
    WorkspaceError,
    disk_error,
)
from picsift.jsonio import dumps
from picsift.labels_text import normalize_label, normalize_optional_label
from picsift.store.schema import (
    SCHEMA_VERSION,
    Action,
    Base,
    ClassName,
    Exclusion,
    Image,
    LabelEvent,
    Meta,
    RunRecord,
    utcnow,
)

logger = logging.getLogger(__name__)
_LABELS_NORMALIZED = "labels_normalized"  # meta key: stored labels were brought to normalize_label's form


class LabelConflictError(ConflictError):
    """Someone else changed the image's label since the caller read it."""


@dataclass(frozen=True)
class ImageRow:
    """A plain, detached view of one catalog image (what stages exchange)."""

    id: int
    sha256: str
    path: str
    source: str
    byte_size: int
    width: int | None
    height: int | None
    format: str | None
    mode: str | None
    readable: bool
    error: str | None
    label: str | None
    label_version: int
    split: str | None
    duplicate_of: int | None
    excluded: bool
    exif_time: str | None = None
    exif_camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    source_kind: str = "folder"
    split_origin: str | None = None  # "source" (folders/manifest), "auto" (seeded split), "manual"
    n_frames: int = 1

    @classmethod
    def from_orm(cls, image: Image) -> ImageRow:
        """A detached ImageRow copied from an ORM `Image` row."""
        return cls(**{f.name: getattr(image, f.name) for f in fields(cls)})


def _normalized_or_none(label: Any) -> str | None:
    try:
        return normalize_label(label)
    except LabelError:  # an empty legacy label is left as it was
        return None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the labelling server read while a training run writes; busy_timeout avoids spurious
    # "database is locked" errors between concurrent processes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _disk_errors(database: str | None) -> Any:
    """A `handle_error` listener: a full disk or a read-only file system under the database comes out as one
    DiskError naming the file, instead of SQLAlchemy's OperationalError ("database or disk is full",
    "attempt to write a readonly database", "disk I/O error" when SQLite cannot create its -shm file)."""

    def translate(context: Any) -> DiskError | None:
        if not isinstance(context.original_exception, sqlite3.OperationalError):  # constraints stay themselves
            return None
        return disk_error(context.original_exception, database)

    return translate


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for `url` with strict JSON columns (NaN -> null); SQLite connections get WAL,
    a 10 s busy timeout and foreign keys on. A write that fails for a full disk or a read-only file system
    raises DiskError (SQLite files; other databases report their own errors)."""
    engine = create_engine(url, future=True, json_serializer=dumps)  # JSON columns strict too: NaN -> null
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database.startswith("file:"):  # a URI filename: file:PATH?mode=ro...
            database = database[len("file:") :].split("?", 1)[0]
        if database and database != ":memory:":
            event.listen(engine, "handle_error", _disk_errors(database))
    return engine


class LabelChange(NamedTuple):
    """One label write of `Catalog.set_labels`: the image, its new label (None removes it) and who/why."""

    image_id: int
    label: str | None
    origin: str = "manual"
    annotator: str = "picsift"
    expected_version: int | None = None
    confidence: float | None = None


def write_label(
    s: Session,
    image_id: int,
    label: str | None,
    *,
    origin: str,
    annotator: str,
    expected_version: int | None = None,
    confidence: float | None = None,
) -> int:
    """Within the caller's transaction `s`: set the image's accepted label (already normalised), record the event,
    declare a new class; returns the new label_version. LabelConflictError when `expected_version` is stale,
    NotFoundError for an unknown image."""
    q = update(Image).where(Image.id == image_id)
    if expected_version is not None:
        q = q.where(Image.label_version == expected_version)
    result = s.execute(q.values(label=label, label_version=Image.label_version + 1))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        current = s.get(Image, image_id)
        if current is None:
            raise NotFoundError(f"no image with id {image_id} in the catalog")
        raise LabelConflictError(
            f"image {image_id} was relabelled to {current.label!r} by someone else "
            f"(version {current.label_version}, you had {expected_version}); reload and retry"
        )
    s.execute(
        update(LabelEvent)
        .where(LabelEvent.image_id == image_id, LabelEvent.status == "accepted")
        .values(status="superseded")
    )
    s.add(
        LabelEvent(
            image_id=image_id,
            label=label,
            status="accepted",
            origin=origin,
            annotator=annotator,
            confidence=confidence,
        )
    )
    if label is not None and s.get(ClassName, label) is None:
        s.add(ClassName(name=label))
    version = s.scalar(select(Image.label_version).where(Image.id == image_id))
    return int(version or 0)


def undo_label_in(s: Session, image_id: int, *, annotator: str, expected_version: int | None = None) -> int:
    """Within the caller's transaction `s`: give the image back the label it had before its latest change (a new
    "undo" change); returns the new label_version. WorkspaceError when it has no label change."""
    events = list(
        s.scalars(
            select(LabelEvent)
            .where(LabelEvent.image_id == image_id, LabelEvent.status.in_(["accepted", "superseded"]))
            .order_by(LabelEvent.id.desc())
        )
    )
    accepted = [e for e in events if e.status == "accepted"]
    if not accepted:
        raise WorkspaceError(f"nothing to undo: image {image_id} has no label change")
    # "superseded" only ever marks a former accepted label (proposals end as applied/withdrawn).
    older = [e for e in events if e.id < accepted[0].id and e.status == "superseded"]
    previous = older[0].label if older else None
    return write_label(s, image_id, previous, origin="undo", annotator=annotator, expected_version=expected_version)


def write_proposal(s: Session, p: LabelChange) -> None:
    """Within the caller's transaction `s`: record `p` (label already normalised) as a proposal awaiting review,
    withdrawing the image's older pending proposals of the same origin."""
    s.execute(
        update(LabelEvent)
        .where(LabelEvent.image_id == p.image_id, LabelEvent.status == "proposed", LabelEvent.origin == p.origin)
        .values(status="withdrawn")
    )
    s.add(
        LabelEvent(
            image_id=p.image_id,
            label=p.label,
            status="proposed",
            origin=p.origin,
            annotator=p.annotator,
            confidence=None if p.confidence is None else float(p.confidence),
        )
    )


def withdraw_proposals(s: Session, image_ids: Sequence[int], status: str = "withdrawn") -> int:
    """Within the caller's transaction `s`: close the pending proposals of these images; returns how many."""
    result = s.execute(
        update(LabelEvent)
        .where(LabelEvent.image_id.in_(list(image_ids)), LabelEvent.status == "proposed")
        .values(status=status)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class Catalog:
    """Images, labels, splits, exclusions and runs of one workspace."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self.session() as s:
            found = s.get(Meta, "schema_version")
            if found is None:
                s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found.value) > SCHEMA_VERSION:
                raise WorkspaceError(
                    f"catalog {url} has schema version {found.value}; this picsift reads up to "
                    f"{SCHEMA_VERSION}: upgrade picsift"
                )
        self._normalize_stored_labels()

    def _normalize_stored_labels(self) -> None:
        """Once per catalog: labels stored before they were normalised (a macOS NFD folder name next to
        an NFC manifest cell) are rewritten to `normalize_label`'s form, merging the two classes."""
        try:
            with self.session() as s:
                if s.get(Meta, _LABELS_NORMALIZED) is not None:
                    return
                conn = s.connection()
                # Plain SQL: the LabelText columns would normalise the old value in the WHERE clause too.
                present = set(inspect(conn).get_table_names())
                for table in ("images", "labels", "feedback"):
                    if table not in present:
                        continue
                    query = text(f"SELECT DISTINCT label FROM {table} WHERE label IS NOT NULL")
                    for old in conn.execute(query).scalars().all():
                        new = _normalized_or_none(old)
                        if new is not None and new != old:
                            change = text(f"UPDATE {table} SET label = :new WHERE label = :old")
                            conn.execute(change, {"new": new, "old": old})
                names = set(conn.execute(text("SELECT name FROM classes")).scalars().all())
                for old in sorted(names):
                    new = _normalized_or_none(old)
                    if new is None or new == old:
                        continue
                    if new in names:
                        conn.execute(text("DELETE FROM classes WHERE name = :old"), {"old": old})
                    else:
                        conn.execute(text("UPDATE classes SET name = :new WHERE name = :old"), {"new": new, "old": old})
                        names.add(new)
                s.merge(Meta(key=_LABELS_NORMALIZED, value="1"))
        except (
            OperationalError,
            IntegrityError,
            DiskError,
        ) as e:  # read-only, or another process is doing it: next time
            logger.warning("could not normalise the stored labels of %s yet: %s", self.url, e)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error (nothing half-written).

        A picsift error raised while binding a value (an empty label, see `LabelText`) comes out as
        itself rather than wrapped in SQLAlchemy's StatementError.
        """
        s = self._sessions()
        try:
            yield s
            s.commit()
        except StatementError as e:
            s.rollback()
            if isinstance(e.orig, PicsiftError):
                raise e.orig from e
            raise
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # ---- images -------------------------------------------------------------------------------
    def images(
        self,
        *,
        split: str | None = None,
        labeled: bool | None = None,
        readable: bool | None = True,
        include_excluded: bool = False,
        include_duplicates: bool = True,
        ids: Sequence[int] | None = None,
    ) -> list[ImageRow]:
        """Catalog images ordered by id, filtered by split, labelled or not, readability (None: any), exclusion,
        duplicates and ids. Readable, non-excluded images of any split by default."""
        q = select(Image).order_by(Image.id)
        if split is not None:
            q = q.where(Image.split == split)
        if labeled is True:
            q = q.where(Image.label.is_not(None))
        elif labeled is False:
            q = q.where(Image.label.is_(None))
        if readable is not None:
            q = q.where(Image.readable == readable)
        if not include_excluded:
            q = q.where(Image.excluded.is_(False))
        if not include_duplicates:
            q = q.where(Image.duplicate_of.is_(None))
        if ids is not None:
            q = q.where(Image.id.in_(list(ids)))
        with self.session() as s:
            return [ImageRow.from_orm(i) for i in s.scalars(q)]

    def image(self, image_id: int) -> ImageRow:
        """The image with id `image_id`. NotFoundError when there is none."""
        with self.session() as s:
            found = s.get(Image, image_id)
            if found is None:
                raise NotFoundError(f"no image with id {image_id} in the catalog")
            return ImageRow.from_orm(found)

    def training_images(self, split: str) -> list[ImageRow]:
        """Readable, labelled, not excluded, first copy of its bytes: what a run trains or tests on."""
        return self.images(split=split, labeled=True, include_duplicates=False)

    def count(self) -> int:
        """The number of image rows in the catalog (unreadable, excluded and duplicates included)."""
        with self.session() as s:
            return int(s.scalar(select(func.count(Image.id))) or 0)

    def classes(self) -> list[str]:
        """Every class: those declared and those in use by a non-excluded image, sorted."""
        with self.session() as s:
            used = set(s.scalars(select(Image.label).where(Image.label.is_not(None)).distinct()))
            declared = set(s.scalars(select(ClassName.name)))
        return sorted(x for x in used | declared if x is not None)

    def add_class(self, name: str) -> None:
        """Declare a class (normalised by `normalize_label`; LabelError when empty)."""
        name = normalize_label(name)
        with self.session() as s:
            if s.get(ClassName, name) is None:
                s.add(ClassName(name=name))

    # ---- labels -------------------------------------------------------------------------------
    def set_label(
        self,
        image_id: int,
        label: str | None,
        *,
        origin: str = "manual",
        annotator: str = "picsift",
        expected_version: int | None = None,
        confidence: float | None = None,
    ) -> int:
        """Set the accepted label and return the new label_version.

        With `expected_version`, the write only succeeds if nobody changed the label since the caller
        read that version (optimistic locking): the later writer gets a LabelConflictError.
        The label is normalised by `normalize_label` (LabelError when empty).
        """
        label = normalize_optional_label(label)
        with self.session() as s:
            return write_label(
                s,
                image_id,
                label,
                origin=origin,
                annotator=annotator,
                expected_version=expected_version,
                confidence=confidence,
            )

    def set_labels(
        self,
        changes: Sequence[LabelChange],
        *,
        proposals: Sequence[LabelChange] = (),
        close_proposals: bool = False,
    ) -> list[int]:
        """Apply several label changes, and record `proposals` (their expected_version unused), in ONE
        transaction: all of them, or (on any error, a kill, a full disk) none. Returns each changed image's new
        label_version, in order. With `close_proposals`, each changed image's pending proposals are withdrawn in
        the same transaction. Raises LabelConflictError (an expected version is stale: nothing is written),
        NotFoundError, LabelError."""
        cleaned = [c._replace(label=normalize_optional_label(c.label)) for c in changes]
        proposed = [p._replace(label=normalize_label(p.label)) for p in proposals]
        with self.session() as s:
            for p in proposed:
                write_proposal(s, p)
            versions = []
            for c in cleaned:
                versions.append(
                    write_label(
                        s,
                        c.image_id,
                        c.label,
                        origin=c.origin,
                        annotator=c.annotator,
                        expected_version=c.expected_version,
                        confidence=c.confidence,
                    )
                )
                if close_proposals:
                    withdraw_proposals(s, [c.image_id])
            return versions

    def label_history(self, image_id: int) -> list[dict[str, Any]]:
        """The image's label events, oldest first: label, status, origin, annotator, confidence, created_at (ISO)."""
        with self.session() as s:
            events = s.scalars(select(LabelEvent).where(LabelEvent.image_id == image_id).order_by(LabelEvent.id))
            return [
                {
                    "label": e.label,
                    "status": e.status,
                    "origin": e.origin,
                    "annotator": e.annotator,
                    "confidence": e.confidence,
                    "created_at": e.created_at.isoformat(),
                }
                for e in events
            ]

    def set_splits(self, assignments: dict[int, str], origin: str = "auto") -> None:
        """Assign {image_id: split} and record `origin` ("auto", "source" or "manual") as the split's origin."""
        with self.session() as s:
            for image_id, split in assignments.items():
                s.execute(update(Image).where(Image.id == image_id).values(split=split, split_origin=origin))

    # ---- proposals, undo and class edits (labelling app) --------------------------------------
    def propose_labels(
        self,
        items: Iterable[tuple[int, str, float | None]],
        *,
        origin: str = "model",
        annotator: str = "picsift",
    ) -> int:
        """Record (image_id, label, confidence) as proposals awaiting review; never touches labels.

        An image's older pending proposals of the same origin are withdrawn, so re-running
        auto-labelling does not pile up duplicates. Returns the number of proposals written.
        """
        n = 0
        with self.session() as s:
            for image_id, raw_label, confidence in items:
                change = LabelChange(image_id, normalize_label(raw_label), origin, annotator, None, confidence)
                write_proposal(s, change)
                n += 1
        return n

    def proposals(self, image_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Pending proposals (newest first per image), with the image's current label and version."""
        q = (
            select(LabelEvent, Image.label, Image.label_version)
            .join(Image, Image.id == LabelEvent.image_id)
            .where(LabelEvent.status == "proposed")
            .order_by(LabelEvent.id.desc())
        )
        if image_ids is not None:
            q = q.where(LabelEvent.image_id.in_(list(image_ids)))
        with self.session() as s:
            return [
                {
                    "id": e.id,
                    "image_id": e.image_id,
                    "label": e.label,
                    "origin": e.origin,
                    "annotator": e.annotator,
                    "confidence": e.confidence,
                    "created_at": e.created_at.isoformat(),
                    "current_label": label,
                    "label_version": version,
                }
                for e, label, version in s.execute(q)
            ]

    def close_proposals(self, image_ids: Sequence[int], status: str = "withdrawn") -> int:
        """Withdraw (or reject) the pending proposals of these images, e.g. after a manual label."""
        with self.session() as s:
            return withdraw_proposals(s, image_ids, status)

    def resolve_proposals(
        self, proposal_ids: Sequence[int], *, accept: bool, annotator: str = "picsift"
    ) -> dict[str, list[int]]:
        """Accept (the proposal becomes the label) or reject pending proposals.

        Accepting never overwrites a label set by someone else in the meantime: such proposals are
        reported under "conflicts" and stay pending.
        """
        out: dict[str, list[int]] = {"accepted": [], "rejected": [], "conflicts": [], "missing": []}
        with self.session() as s:
            found = {
                e.id: (e.image_id, e.label, e.origin, e.confidence)
                for e in s.scalars(
                    select(LabelEvent).where(LabelEvent.id.in_(list(proposal_ids)), LabelEvent.status == "proposed")
                )
            }
        for pid in proposal_ids:
            if pid not in found:
                out["missing"].append(pid)
                continue
            image_id, label, origin, confidence = found[pid]
            if not accept:
                with self.session() as s:
                    s.execute(update(LabelEvent).where(LabelEvent.id == pid).values(status="rejected"))
                out["rejected"].append(pid)
                continue
            current = self.image(image_id)
            if current.label is not None and current.label != label:
                out["conflicts"].append(pid)
                continue
            try:  # the label and the proposal's new status: one transaction
                with self.session() as s:
                    write_label(
                        s,
                        image_id,
                        label,
                        origin=origin,
                        annotator=annotator,
                        expected_version=current.label_version,
                        confidence=confidence,
                    )
                    s.execute(update(LabelEvent).where(LabelEvent.id == pid).values(status="applied"))
            except LabelConflictError:
                out["conflicts"].append(pid)
                continue
            out["accepted"].append(pid)
        return out

    def undo_label(self, image_id: int, *, annotator: str = "picsift", expected_version: int | None = None) -> int:
        """Restore the label the image had before its latest change (recorded as a new change, in one transaction).
        WorkspaceError when it has no label change; LabelConflictError when `expected_version` is stale."""
        with self.session() as s:
            return undo_label_in(s, image_id, annotator=annotator, expected_version=expected_version)

    def relabel_class(self, old: str, new: str, *, annotator: str = "picsift") -> int:
        """Rename class `old` to `new`, or merge it into `new` if that exists. Returns images changed.

        Every affected image gets a label event (who and when), and pending proposals follow; all in one
        transaction (a kill leaves the class as it was).
        Both names are normalised by `normalize_label` (LabelError when empty).
        """
        old, new = normalize_label(old), normalize_label(new)
        if old not in self.classes():
            raise WorkspaceError(f"no class {old!r}; classes: {self.classes()}")
        if old == new:
            return 0
        ids = [r.id for r in self.images(readable=None, include_excluded=True) if r.label == old]
        with self.session() as s:  # every image, the proposals and the class list: one transaction
            for image_id in ids:
                write_label(s, image_id, new, origin="manual", annotator=annotator)
            s.execute(
                update(LabelEvent).where(LabelEvent.label == old, LabelEvent.status == "proposed").values(label=new)
            )
            declared = s.get(ClassName, old)
            if declared is not None:
                s.delete(declared)
            if s.get(ClassName, new) is None:
                s.add(ClassName(name=new))
        return len(ids)

    # ---- exclusions (reversible) --------------------------------------------------------------
    def exclude(self, image_reasons: dict[int, str], *, kind: str, actor: str = "picsift", reason: str = "") -> int:
        """Exclude images from training, recorded as one undoable action; returns the action id."""
        with self.session() as s:
            action = Action(kind=kind, actor=actor, reason=reason, payload={"count": len(image_reasons)})
            s.add(action)
            s.flush()
            for image_id, why in image_reasons.items():
                s.add(Exclusion(image_id=image_id, action_id=action.id, reason=why, actor=actor))
                s.execute(update(Image).where(Image.id == image_id).values(excluded=True))
            return int(action.id)

    def undo(self, action_id: int | None = None) -> int:
        """Undo an action (the latest not yet undone by default); returns its id."""
        with self.session() as s:
            q = select(Action).where(Action.undone_at.is_(None))
            q = q.where(Action.id == action_id) if action_id is not None else q.order_by(Action.id.desc())
            action = s.scalars(q).first()
            if action is None:
                what = f"action {action_id}" if action_id is not None else "any action"
                raise WorkspaceError(f"nothing to undo: {what} not found or already undone")
            exclusions = list(s.scalars(select(Exclusion).where(Exclusion.action_id == action.id)))
            for ex in exclusions:
                ex.active = False
            s.flush()
            for image_id in {ex.image_id for ex in exclusions}:
                still = s.scalar(
                    select(func.count(Exclusion.id)).where(Exclusion.image_id == image_id, Exclusion.active.is_(True))
                )
                s.execute(update(Image).where(Image.id == image_id).values(excluded=bool(still)))
            action.undone_at = utcnow()
            return int(action.id)

    def exclusions(self, active_only: bool = True) -> list[dict[str, Any]]:
        """The exclusions (only the active ones by default), oldest first, with each image's path and the action id."""
        with self.session() as s:
            q = select(Exclusion, Image.path).join(Image, Image.id == Exclusion.image_id)
            if active_only:
                q = q.where(Exclusion.active.is_(True))
            return [
                {
                    "image_id": ex.image_id,
                    "path": path,
                    "action_id": ex.action_id,
                    "reason": ex.reason,
                    "actor": ex.actor,
                    "created_at": ex.created_at.isoformat(),
                }
                for ex, path in s.execute(q.order_by(Exclusion.id))
            ]

    def actions(self) -> list[dict[str, Any]]:
        """Every recorded action, oldest first, with its payload and when it was undone (None if not)."""
        with self.session() as s:
            return [
                {
                    "id": a.id,
                    "kind": a.kind,
                    "actor": a.actor,
                    "reason": a.reason,
                    "payload": a.payload,
                    "created_at": a.created_at.isoformat(),
                    "undone_at": a.undone_at.isoformat() if a.undone_at else None,
                }
                for a in s.scalars(select(Action).order_by(Action.id))
            ]

    # ---- runs ---------------------------------------------------------------------------------
    def record_run(self, run_id: str, path: str, model: str, catalog_hash: str, metrics: dict) -> None:
        """Insert or replace the catalog's record of run `run_id`: its path, model, catalog hash and metrics."""
        with self.session() as s:
            s.merge(RunRecord(id=run_id, path=path, model=model, catalog_hash=catalog_hash, metrics=metrics))

    # ---- summaries ----------------------------------------------------------------------------
    def catalog_hash(self) -> str:
        """A data version: changes whenever an image, label, split or exclusion changes."""
        h = hashlib.sha256()
        with self.session() as s:
            rows = s.execute(
                select(Image.sha256, Image.path, Image.label, Image.split, Image.excluded, Image.readable).order_by(
                    Image.id
                )
            )
            for row in rows:
                h.update(repr(tuple(row)).encode())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Counts of the catalog: images, readable/unreadable (with reasons), labelled, duplicates, excluded, classes,
        per-split class counts and the catalog hash."""
        rows = self.images(readable=None, include_excluded=True)
        usable = [r for r in rows if r.readable and not r.excluded]
        per_split: dict[str, Counter[str]] = {}
        for r in usable:
            per_split.setdefault(r.split or "none", Counter())[r.label or "(unlabeled)"] += 1
        return {
            "images": len(rows),
            "readable": sum(r.readable for r in rows),
            "unreadable": [{"path": r.path, "reason": r.error} for r in rows if not r.readable],
            "labeled": sum(r.label is not None for r in usable),
            "unlabeled": sum(r.label is None for r in usable),
            "exact_duplicates": sum(r.duplicate_of is not None for r in rows),
            "excluded": sum(r.excluded for r in rows),
            "classes": self.classes(),
            "splits": {k: dict(sorted(v.items())) for k, v in sorted(per_split.items())},
            "catalog_hash": self.catalog_hash(),
        }

    def add_images(self, images: Iterable[Image]) -> None:
        """Add ORM `Image` rows in one transaction (rolled back whole on any error)."""
        with self.session() as s:
            s.add_all(list(images))
