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

from sqlalchemy import create_engine, event, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from picsift.errors import ConflictError, DiskError, NotFoundError, PicsiftError, WorkspaceError, disk_error
from picsift.jsonio import dumps
from picsift.labels_text import normalize_label, normalize_optional_label
from picsift.sqlite_wal import ensure_wal
from picsift.store import catalog_url
from picsift.store.migrate import upgrade_catalog
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
MAX_ID = 2**63 - 1  # the largest id a catalog stores (a signed 64-bit integer, SQLite and PostgreSQL alike)


class LabelConflictError(ConflictError):
    """Someone else changed the image's label since the caller read it."""


@dataclass(frozen=True)
class LabelWrite:
    """One label change as written: the image's label_version after it and the label it set (None: removed)."""

    version: int
    label: str | None


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


BUSY_TIMEOUT_S = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # busy_timeout first: it avoids spurious "database is locked" errors between concurrent processes, and
    # the journal mode switch below may have to wait for another connection.
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    ensure_wal(cursor, BUSY_TIMEOUT_S)
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


def make_engine(url: str | URL) -> Engine:
    """A SQLAlchemy engine for the catalog at `url` with strict JSON columns (NaN -> null).

    SQLite connections get WAL, a 10 s busy timeout and foreign keys on. PostgreSQL connections (psycopg 3)
    get the password from $PICSIFT_CATALOG_PASSWORD when the URL has none (else libpq's $PGPASSWORD or
    ~/.pgpass), a 10 s connect timeout and a 10 s lock timeout (the counterpart of SQLite's busy timeout),
    and are checked before use (a restarted server). On SQLite a write that fails for a full disk or a read-only
    file system raises DiskError naming the file. ConfigError for a URL that is neither.
    """
    parsed = catalog_url.with_password(url)
    if parsed.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": 10}
        if "options" not in parsed.query:
            connect_args["options"] = "-c lock_timeout=10000"
        return create_engine(parsed, json_serializer=dumps, pool_pre_ping=True, connect_args=connect_args)
    engine = create_engine(parsed, json_serializer=dumps)  # JSON columns strict too: NaN -> null
    event.listen(engine, "connect", _sqlite_pragmas)
    database = engine.url.database
    if database and database.startswith("file:"):  # a URI filename: file:PATH?mode=ro...
        database = database[len("file:") :].split("?", 1)[0]
    if database and database != ":memory:":  # a full disk or a read-only file system: one DiskError
        event.listen(engine, "handle_error", _disk_errors(database))
    return engine


def insert_ignoring_duplicates(session: Session, table: type[Base], rows: list[dict[str, Any]]) -> None:
    """INSERT `rows` into `table`, skipping any whose primary or unique key is already there (SQLite's
    INSERT OR IGNORE, PostgreSQL's ON CONFLICT DO NOTHING): safe when two writers add the same row at once."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(table).on_conflict_do_nothing(), rows)


def declare_classes(session: Session, names: Iterable[str]) -> None:
    """Declare each class name not declared yet (in the session's transaction; concurrent writers declaring the
    same new class do not collide)."""
    now = utcnow()
    insert_ignoring_duplicates(session, ClassName, [{"name": n, "created_at": now} for n in sorted(set(names))])


def _label_written(
    s: Session,
    image_id: int,
    label: str | None,
    *,
    origin: str,
    annotator: str,
    confidence: float | None,
    conditions: Sequence[Any] = (),
) -> int | None:
    """Set the image's label in one conditional UPDATE (the version bumped in the same statement), supersede its
    accepted event and record the new one, in the session's transaction. Returns the new label_version, or None
    when no row matched `conditions` (nothing written). The UPDATE comes first: on SQLite it takes the write lock,
    on PostgreSQL the row lock (a concurrent writer's condition is re-checked after it waits)."""
    label = normalize_optional_label(label)
    q = update(Image).where(Image.id == image_id, *conditions)
    result = s.execute(q.values(label=label, label_version=Image.label_version + 1))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return None
    s.execute(
        update(LabelEvent)
        .where(LabelEvent.image_id == image_id, LabelEvent.status == "accepted")
        .values(status="superseded")
    )
    s.add(
        LabelEvent(
            image_id=image_id, label=label, status="accepted", origin=origin, annotator=annotator, confidence=confidence
        )
    )
    if label is not None:
        declare_classes(s, [label])
    return int(s.scalar(select(Image.label_version).where(Image.id == image_id)) or 0)


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
    origin: str = "manual",
    annotator: str = "picsift",
    expected_version: int | None = None,
    confidence: float | None = None,
) -> int:
    """`Catalog.set_label` inside the caller's session (so that it commits, or not, with the caller's other
    writes). Returns the new label_version; LabelConflictError when `expected_version` is given and the image has
    another; NotFoundError for an unknown id."""
    conditions = [] if expected_version is None else [Image.label_version == expected_version]
    version = _label_written(
        s, image_id, label, origin=origin, annotator=annotator, confidence=confidence, conditions=conditions
    )
    if version is not None:
        return version
    current = s.get(Image, image_id)
    if current is None:
        raise NotFoundError(f"no image with id {image_id} in the catalog")
    raise LabelConflictError(
        f"image {image_id} was relabelled to {current.label!r} by someone else "
        f"(version {current.label_version}, you had {expected_version}); reload and retry"
    )


def _undo_stack(events: Sequence[LabelEvent]) -> list[tuple[LabelEvent, str | None]]:
    """The image's changes still in effect, oldest first, each with the label it replaced: an editor's undo stack
    replayed from `events` (its accepted and superseded label events, oldest first). An "undo" event steps back
    (pops the change it reverted) rather than being a change to return to; an import label that starts the
    history is the image's starting point, not a change. An "undo" event that restored something other than
    the label before the latest change (as older versions of picsift recorded) counts as a change of its own."""
    stack: list[tuple[LabelEvent, str | None]] = []
    current: str | None = None
    for i, e in enumerate(events):
        if i == 0 and e.origin == "import":
            current = e.label
            continue
        if e.origin == "undo" and stack and stack[-1][1] == e.label:
            stack.pop()
        else:
            stack.append((e, current))
        current = e.label
    return stack


def _reopen_applied_proposal(s: Session, change: LabelEvent) -> None:
    """Within the caller's transaction: the proposal whose acceptance wrote `change` (the image's latest applied
    proposal of its origin and label, older than it) is pending again, unless a newer proposal of that origin
    for the image is pending already. No-op for a change that no proposal made."""
    proposal = s.scalar(
        select(LabelEvent)
        .where(
            LabelEvent.image_id == change.image_id,
            LabelEvent.status == "applied",
            LabelEvent.origin == change.origin,
            LabelEvent.label == change.label,
            LabelEvent.id < change.id,
        )
        .order_by(LabelEvent.id.desc())
        .limit(1)
    )
    if proposal is None:
        return
    pending = s.scalar(
        select(LabelEvent.id).where(
            LabelEvent.image_id == change.image_id,
            LabelEvent.status == "proposed",
            LabelEvent.origin == change.origin,
        )
    )
    if pending is None:
        proposal.status = "proposed"


def write_undo_label(s: Session, image_id: int, *, annotator: str, expected_version: int | None = None) -> int:
    """`Catalog.undo_label` inside the caller's session. Without `expected_version` the version read before the
    history is expected, so a change made between that read and the write is a LabelConflictError rather than
    undone blindly. NotFoundError for an unknown id; WorkspaceError when no change is left to undo."""
    seen = expected_version
    if seen is None:
        seen = s.scalar(select(Image.label_version).where(Image.id == image_id))
        if seen is None:
            raise NotFoundError(f"no image with id {image_id} in the catalog")
    events = list(
        s.scalars(
            select(LabelEvent)
            .where(LabelEvent.image_id == image_id, LabelEvent.status.in_(["accepted", "superseded"]))
            .order_by(LabelEvent.id)
        )
    )
    stack = _undo_stack(events)
    if not stack:
        row = s.get(Image, image_id)
        if row is None:
            raise NotFoundError(f"no image with id {image_id} in the catalog")
        if row.label_version != seen:  # stale first: what the caller saw is not what there is now
            raise LabelConflictError(
                f"image {image_id} was relabelled to {row.label!r} by someone else "
                f"(version {row.label_version}, you had {seen}); reload and retry"
            )
        raise WorkspaceError(f"nothing left to undo: image {image_id} has no label change to step back from")
    change, previous = stack[-1]
    version = write_label(s, image_id, previous, origin="undo", annotator=annotator, expected_version=seen)
    _reopen_applied_proposal(s, change)
    return version


def _resolve_proposal(s: Session, proposal_id: int, *, accept: bool, annotator: str) -> str:
    """Claim one pending proposal and apply (or reject) it in the session's transaction: "accepted", "rejected" or
    "missing" (not pending: unknown, or resolved by someone else). LabelConflictError (the caller rolls back, the
    proposal stays pending) when the image was labelled otherwise or changed after it was read."""
    claimed = s.execute(
        update(LabelEvent)
        .where(LabelEvent.id == proposal_id, LabelEvent.status == "proposed")
        .values(status="applied" if accept else "rejected")
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        return "missing"
    if not accept:
        return "rejected"
    proposal = s.get(LabelEvent, proposal_id)
    assert proposal is not None  # claimed just now
    current = s.get(Image, proposal.image_id)
    if current is None:
        raise NotFoundError(f"no image with id {proposal.image_id} in the catalog")
    if current.label is not None and current.label != proposal.label:
        raise LabelConflictError(f"image {current.id} is labelled {current.label!r}, not {proposal.label!r}")
    write_label(
        s,
        proposal.image_id,
        proposal.label,
        origin=proposal.origin,
        annotator=annotator,
        expected_version=current.label_version,
        confidence=proposal.confidence,
    )
    return "accepted"


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

    def __init__(self, url: str | URL) -> None:
        """Open the catalog database at `url` (SQLite or PostgreSQL), creating or upgrading its schema with the
        packaged migrations. `url` (the attribute) is the URL with its password masked.

        WorkspaceError when the database cannot be reached, or holds a catalog of a newer picsift;
        ConfigError for a URL that names neither back end.
        """
        self.url = catalog_url.shown(catalog_url.parse(url))
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            upgrade_catalog(self.engine, self.url)
            with self.session() as s:
                found = s.get(Meta, "schema_version")
        except OperationalError as e:
            self.engine.dispose()
            hint = f" (a password is read from {catalog_url.PASSWORD_SOURCES})" if self.backend == "postgresql" else ""
            raise WorkspaceError(f"cannot open catalog {self.url}: {str(e.orig).strip()}{hint}") from e
        except BaseException:
            self.engine.dispose()
            raise
        if found is not None and int(found.value) > SCHEMA_VERSION:
            self.engine.dispose()
            raise WorkspaceError(
                f"catalog {self.url} has schema version {found.value}; this picsift reads up to "
                f"{SCHEMA_VERSION}: upgrade picsift"
            )

    @property
    def backend(self) -> str:
        """The database behind the catalog: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error (nothing half-written).

        A picsift error raised while binding a value (an empty label, see `LabelText`) comes out as
        itself rather than wrapped in SQLAlchemy's StatementError; an id beyond SQLite's 64-bit integers
        (sqlite3 refuses to bind it with OverflowError) is a NotFoundError: no record has it.
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
        except OverflowError as e:
            s.rollback()
            raise NotFoundError(
                f"no record has an id beyond the catalog's 64-bit integer range (at most {MAX_ID})"
            ) from e
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
            declared = set(s.scalars(select(ClassName.name)))
        return sorted(self.labels_in_use() | declared)

    def labels_in_use(self) -> set[str]:
        """The labels some image has (a declared class no image has is left out)."""
        with self.session() as s:
            return {x for x in s.scalars(select(Image.label).where(Image.label.is_not(None)).distinct()) if x}

    def add_class(self, name: str) -> None:
        """Declare a class (normalised by `normalize_label`; LabelError when empty)."""
        name = normalize_label(name)
        with self.session() as s:
            declare_classes(s, [name])

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
        The label is normalised by `normalize_label` (LabelError when empty); NotFoundError for an unknown id.
        """
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

        Each proposal is claimed by a conditional UPDATE (`status = 'proposed'`) in the transaction that writes its
        label, so of two reviewers resolving it at once one does it and the other finds it under "missing".
        Accepting never overwrites a label set by someone else in the meantime: such proposals are reported under
        "conflicts" and stay pending.
        """
        out: dict[str, list[int]] = {"accepted": [], "rejected": [], "conflicts": [], "missing": []}
        for pid in proposal_ids:
            try:
                with self.session() as s:
                    outcome = _resolve_proposal(s, pid, accept=accept, annotator=annotator)
            except LabelConflictError:  # rolled back: the proposal stays pending
                outcome = "conflicts"
            out[outcome].append(pid)
        return out

    def undo_label(
        self, image_id: int, *, annotator: str = "picsift", expected_version: int | None = None
    ) -> LabelWrite:
        """Step back through the image's label history like an editor's undo: restore the label it had before
        its latest change still in effect (recorded as an "undo" change, which a further undo steps back past
        rather than returns to). Undoing an accepted proposal makes that proposal pending again (unless a newer
        one of its origin is pending). Returns the version and label this change wrote, read in its own
        transaction (another writer may follow at once, so read neither back later). LabelConflictError when the
        image changed after `expected_version` (or, without it, while the undo was being worked out);
        WorkspaceError when no change is left to undo (an imported label is the image's starting point)."""
        with self.session() as s:
            version = write_undo_label(s, image_id, annotator=annotator, expected_version=expected_version)
            label = s.scalar(select(Image.label).where(Image.id == image_id))
        return LabelWrite(version, label)

    def relabel_class(self, old: str, new: str, *, annotator: str = "picsift") -> int:
        """Rename class `old` to `new`, or merge it into `new` if that exists. Returns images changed.

        Every affected image gets a label event (who and when), and pending proposals follow.
        Both names are normalised by `normalize_label` (LabelError when empty). Each image is relabelled only
        while it still has the label `old` (optimistic locking on its version): a label someone else writes
        while the rename runs stands. All in one transaction (a kill leaves the class
        as it was).
        """
        old, new = normalize_label(old), normalize_label(new)
        if old not in self.classes():
            raise WorkspaceError(f"no class {old!r}; classes: {self.classes()}")
        if old == new:
            return 0
        ids = [r.id for r in self.images(readable=None, include_excluded=True) if r.label == old]
        changed = 0
        with self.session() as s:  # every image, the proposals and the class list: one transaction
            for image_id in ids:  # only while the image still has `old`: a label changed meanwhile is left alone
                written = _label_written(
                    s,
                    image_id,
                    new,
                    origin="manual",
                    annotator=annotator,
                    confidence=None,
                    conditions=[Image.label == old],
                )
                changed += written is not None
            s.execute(
                update(LabelEvent).where(LabelEvent.label == old, LabelEvent.status == "proposed").values(label=new)
            )
            declared = s.get(ClassName, old)
            if declared is not None:
                s.delete(declared)
            declare_classes(s, [new])
        return changed

    # ---- exclusions (reversible) --------------------------------------------------------------
    def exclude(self, image_reasons: dict[int, str], *, kind: str, actor: str = "picsift", reason: str = "") -> int:
        """Exclude images from training, recorded as one undoable action; returns the action id."""
        with self.session() as s:
            action = Action(kind=kind, actor=actor, reason=reason, payload={"count": len(image_reasons)})
            s.add(action)
            s.flush()
            for image_id, why in sorted(image_reasons.items()):  # one row-lock order for every writer: no deadlock
                s.add(Exclusion(image_id=image_id, action_id=action.id, reason=why, actor=actor))
                s.execute(update(Image).where(Image.id == image_id).values(excluded=True))
            return int(action.id)

    def undo(self, action_id: int | None = None) -> int:
        """Undo an action (the latest not yet undone by default); returns its id.

        Safe against concurrent writers: the action is claimed by a conditional UPDATE (`undone_at IS NULL`; of
        two undos of one action the second gets "already undone"), its images are locked in id order (PostgreSQL
        `SELECT ... FOR NO KEY UPDATE`, the lock an exclusion's UPDATE takes; on SQLite the claim holds the write
        lock) and each image's `excluded` flag is recomputed from its active exclusions in one UPDATE after the
        locks are held, so an exclusion racing the undo is never lost. WorkspaceError when there is nothing to undo.
        """
        with self.session() as s:
            if action_id is None:
                action_id = s.scalar(
                    select(Action.id).where(Action.undone_at.is_(None)).order_by(Action.id.desc()).limit(1)
                )
            claim = update(Action).where(Action.id == action_id, Action.undone_at.is_(None)).values(undone_at=utcnow())
            if action_id is None or s.execute(claim).rowcount != 1:  # type: ignore[attr-defined]
                what = f"action {action_id}" if action_id is not None else "any action"
                raise WorkspaceError(f"nothing to undo: {what} not found or already undone")
            images = select(Exclusion.image_id).where(Exclusion.action_id == action_id)
            s.execute(select(Image.id).where(Image.id.in_(images)).order_by(Image.id).with_for_update(key_share=True))
            s.execute(update(Exclusion).where(Exclusion.action_id == action_id).values(active=False))
            still = exists().where(Exclusion.image_id == Image.id, Exclusion.active.is_(True))
            s.execute(update(Image).where(Image.id.in_(images)).values(excluded=still))
            return int(action_id)

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
        row = {"id": run_id, "path": path, "model": model, "catalog_hash": catalog_hash, "metrics": metrics}
        with self.session() as s:
            insert = pg_insert if self.backend == "postgresql" else sqlite_insert
            stmt = insert(RunRecord).values(created_at=utcnow(), **row)
            s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=row))

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
