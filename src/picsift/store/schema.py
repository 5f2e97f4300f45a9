"""Catalog tables (SQLAlchemy 2.0 ORM) on SQLite (the default) or PostgreSQL. The schema in a database is made
and upgraded by the Alembic migrations in `picsift/store/migrations` (see `picsift.store.migrate`).

One row per image *file* in `images`. The same bytes seen under a second path get their own row
with `duplicate_of` pointing at the first, so nothing is silently dropped. Labels are an append-only
history in `labels`; `images.label` caches the current accepted label and `images.label_version`
counts changes, which lets concurrent writers detect conflicts.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from picsift.labels_text import normalize_label

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    """The current UTC time as a naive datetime (what the DateTime columns store)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class FsPath(TypeDecorator[str]):
    """A file path as text, including names that are not valid UTF-8.

    On Linux a file name is bytes; Python represents undecodable bytes as lone surrogates, which no
    database text column accepts. Such names (and, to stay reversible, anything that starts with the
    marker) are stored as the marker plus the hex of the raw bytes and decoded back on read, so
    `ImageRow.path` is always the exact string `open()` needs.
    """

    impl = Text
    cache_ok = True
    MARKER = "fsbytes:"

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """The text stored for a path: the path itself, or the marker plus the hex of its bytes when it is not
        valid UTF-8 (or starts with the marker)."""
        if value is None:
            return None
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return self.MARKER + os.fsencode(text).hex()
        return self.MARKER + text.encode("utf-8").hex() if text.startswith(self.MARKER) else text

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """The path read back: hex-encoded values are decoded to the original file-system string."""
        if isinstance(value, str) and value.startswith(self.MARKER):
            return os.fsdecode(bytes.fromhex(value[len(self.MARKER) :]))
        return value


def BoundedText(length: int) -> TypeEngine[str]:
    """VARCHAR(`length`) on SQLite (which never enforces the bound) and TEXT on PostgreSQL (which would): a long
    run name or a client's prediction id is stored alike on both back ends."""
    return String(length).with_variant(Text(), "postgresql")


class LabelText(TypeDecorator[str]):
    """A label (class name): every value written or compared is in the one normal form of
    `normalize_label` (NFC, stripped), so no write path can store two spellings of one class.
    VARCHAR on SQLite, TEXT on PostgreSQL (see `BoundedText`)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.impl = BoundedText(length)  # type: ignore[assignment]  # an instance, as TypeDecorator keeps it

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """The label in `normalize_label`'s form (None stays None). LabelError when it is empty."""
        return None if value is None else normalize_label(value)


class Base(DeclarativeBase):
    """The declarative base of every catalog table."""

    pass


class Image(Base):
    """One image file: its bytes' sha256, path, decoded size and format, EXIF, label, split and exclusion state."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(BoundedText(64), index=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    source: Mapped[str] = mapped_column(FsPath, default="")
    source_kind: Mapped[str] = mapped_column(BoundedText(16), default="folder")
    byte_size: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(BoundedText(16), nullable=True)
    mode: Mapped[str | None] = mapped_column(BoundedText(16), nullable=True)
    n_frames: Mapped[int] = mapped_column(Integer, default=1)
    exif_time: Mapped[str | None] = mapped_column(BoundedText(32), nullable=True)
    exif_camera: Mapped[str | None] = mapped_column(Text, nullable=True)
    gps_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    gps_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    readable: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    label: Mapped[str | None] = mapped_column(LabelText(200), nullable=True, index=True)
    label_version: Mapped[int] = mapped_column(Integer, default=0)
    split: Mapped[str | None] = mapped_column(BoundedText(8), nullable=True, index=True)
    split_origin: Mapped[str | None] = mapped_column(BoundedText(8), nullable=True)  # "source" or "auto"
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id"), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LabelEvent(Base):
    """One entry of an image's append-only label history (accepted, proposed, rejected, superseded, ...)."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    label: Mapped[str | None] = mapped_column(LabelText(200), nullable=True)
    # accepted: the image's label; proposed: awaiting review; rejected: a refused proposal;
    # superseded: an accepted label later replaced.
    status: Mapped[str] = mapped_column(BoundedText(12), default="accepted", index=True)
    origin: Mapped[str] = mapped_column(BoundedText(16), default="import")  # import|manual|model|cluster|feedback
    annotator: Mapped[str] = mapped_column(BoundedText(100), default="picsift")
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ClassName(Base):
    """A declared class name (classes may also exist only through image labels)."""

    __tablename__ = "classes"

    name: Mapped[str] = mapped_column(LabelText(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ImportRecord(Base):
    """One import of a source folder or manifest, with its counts."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(FsPath)
    kind: Mapped[str] = mapped_column(BoundedText(16))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)


class Action(Base):
    """A reversible bulk change (e.g. curation exclusions); `undone_at` is set by undo."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(BoundedText(32))
    actor: Mapped[str] = mapped_column(BoundedText(100), default="picsift")
    reason: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Exclusion(Base):
    """An image excluded from training by an action; `active` turns False when the action is undone."""

    __tablename__ = "exclusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("actions.id"), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(BoundedText(100), default="picsift")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)


class RunRecord(Base):
    """The catalog's record of a training run: its folder, model, catalog hash and metrics."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(BoundedText(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(BoundedText(100))
    catalog_hash: Mapped[str] = mapped_column(BoundedText(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)


class Meta(Base):
    """A key/value setting of the catalog (schema version, one-off migrations done)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(BoundedText(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
