"""Baseline: the catalog as picsift wrote it before migrations (schema version 1), feedback table included.

Each table is created only when missing, so a catalog made by earlier picsift (tables made by
`create_all`, no alembic_version yet) is brought to this revision without touching its data.

Bounded text columns (VARCHAR(n) on SQLite, which ignores the bound) are TEXT on PostgreSQL, which would
enforce it: a run name, a client's prediction id or a long annotator name is stored the same on both.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=False)


def _tables() -> list[tuple[str, list[sa.Column | sa.Constraint], list[tuple[str, str]]]]:
    """(table, columns and constraints, [(index name, column)]) in creation order (referenced tables first)."""
    return [
        (
            "imports",
            [
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column("source", sa.Text(), nullable=False),
                sa.Column("kind", _text(16), nullable=False),
                _created_at("started_at"),
                sa.Column("counts", sa.JSON(), nullable=False),
            ],
            [],
        ),
        (
            "images",
            [
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column("sha256", _text(64), nullable=False),
                sa.Column("path", sa.Text(), nullable=False),
                sa.Column("source", sa.Text(), nullable=False),
                sa.Column("source_kind", _text(16), nullable=False),
                sa.Column("byte_size", sa.Integer(), nullable=False),
                sa.Column("width", sa.Integer(), nullable=True),
                sa.Column("height", sa.Integer(), nullable=True),
                sa.Column("format", _text(16), nullable=True),
                sa.Column("mode", _text(16), nullable=True),
                sa.Column("n_frames", sa.Integer(), nullable=False),
                sa.Column("exif_time", _text(32), nullable=True),
                sa.Column("exif_camera", sa.Text(), nullable=True),
                sa.Column("gps_lat", sa.Float(), nullable=True),
                sa.Column("gps_lon", sa.Float(), nullable=True),
                sa.Column("readable", sa.Boolean(), nullable=False),
                sa.Column("error", sa.Text(), nullable=True),
                sa.Column("label", _text(200), nullable=True),
                sa.Column("label_version", sa.Integer(), nullable=False),
                sa.Column("split", _text(8), nullable=True),
                sa.Column("split_origin", _text(8), nullable=True),
                sa.Column("duplicate_of", sa.Integer(), sa.ForeignKey("images.id"), nullable=True),
                sa.Column("excluded", sa.Boolean(), nullable=False),
                sa.Column("import_id", sa.Integer(), sa.ForeignKey("imports.id"), nullable=True),
                _created_at("added_at"),
                sa.UniqueConstraint("path"),
            ],
            [(f"ix_images_{c}", c) for c in ("excluded", "sha256", "readable", "split", "label")],
        ),
        (
            "labels",
            [
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
                sa.Column("label", _text(200), nullable=True),
                sa.Column("status", _text(12), nullable=False),
                sa.Column("origin", _text(16), nullable=False),
                sa.Column("annotator", _text(100), nullable=False),
                sa.Column("confidence", sa.Float(), nullable=True),
                _created_at(),
            ],
            [("ix_labels_status", "status"), ("ix_labels_image_id", "image_id")],
        ),
        ("classes", [sa.Column("name", _text(200), primary_key=True), _created_at()], []),
        (
            "actions",
            [
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column("kind", _text(32), nullable=False),
                sa.Column("actor", _text(100), nullable=False),
                sa.Column("reason", sa.Text(), nullable=False),
                sa.Column("payload", sa.JSON(), nullable=False),
                _created_at(),
                sa.Column("undone_at", sa.DateTime(), nullable=True),
            ],
            [],
        ),
        (
            "exclusions",
            [
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
                sa.Column("action_id", sa.Integer(), sa.ForeignKey("actions.id"), nullable=True),
                sa.Column("reason", sa.Text(), nullable=False),
                sa.Column("actor", _text(100), nullable=False),
                _created_at(),
                sa.Column("active", sa.Boolean(), nullable=False),
            ],
            [(f"ix_exclusions_{c}", c) for c in ("active", "image_id", "action_id")],
        ),
        (
            "runs",
            [
                sa.Column("id", _text(64), primary_key=True),
                sa.Column("path", sa.Text(), nullable=False),
                sa.Column("model", _text(100), nullable=False),
                sa.Column("catalog_hash", _text(64), nullable=False),
                _created_at(),
                sa.Column("metrics", sa.JSON(), nullable=False),
            ],
            [],
        ),
        ("meta", [sa.Column("key", _text(64), primary_key=True), sa.Column("value", sa.Text(), nullable=False)], []),
        (
            "feedback",
            [
                sa.Column("id", sa.Integer(), primary_key=True),
                sa.Column("prediction_id", _text(64), nullable=True),
                sa.Column("label", _text(200), nullable=False),
                sa.Column("comment", sa.Text(), nullable=False),
                sa.Column("predicted_label", _text(200), nullable=True),
                sa.Column("confidence", sa.Float(), nullable=True),
                sa.Column("model_version", _text(200), nullable=True),
                sa.Column("sha256", _text(64), nullable=True),
                sa.Column("image_path", sa.Text(), nullable=True),
                sa.Column("status", _text(12), nullable=False),
                sa.Column("reviewer", _text(100), nullable=True),
                sa.Column("reviewed_at", sa.DateTime(), nullable=True),
                sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=True),
                _created_at(),
            ],
            [(f"ix_feedback_{c}", c) for c in ("prediction_id", "status", "sha256")],
        ),
    ]


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns, indexes in _tables():
        if name in present:
            continue
        op.create_table(name, *columns)
        for index, column in indexes:
            op.create_index(index, name, [column])
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    found = op.get_bind().execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    if found is None:
        op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    for name, _, _ in reversed(_tables()):
        op.drop_table(name)
