"""Labels stored before picsift normalised them (a macOS NFD folder name next to an NFC manifest cell) are
rewritten in `normalize_label`'s form, merging the two spellings of one class. Skipped when the catalog's
meta row `labels_normalized` says an earlier picsift already did it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from picsift.errors import LabelError
from picsift.labels_text import normalize_label

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_DONE = "labels_normalized"


def _normalized_or_none(label: object) -> str | None:
    try:
        return normalize_label(label)
    except LabelError:  # an empty legacy label is left as it was
        return None


def upgrade() -> None:
    conn = op.get_bind()
    done = conn.execute(sa.text("SELECT value FROM meta WHERE key = :k"), {"k": _DONE}).first()
    if done is None:
        # Plain SQL: the ORM's LabelText columns would normalise the old value in the WHERE clause too.
        for table in ("images", "labels", "feedback"):
            query = sa.text(f"SELECT DISTINCT label FROM {table} WHERE label IS NOT NULL")
            for old in conn.execute(query).scalars().all():
                new = _normalized_or_none(old)
                if new is not None and new != old:
                    change = sa.text(f"UPDATE {table} SET label = :new WHERE label = :old")
                    conn.execute(change, {"new": new, "old": old})
        names = set(conn.execute(sa.text("SELECT name FROM classes")).scalars().all())
        for old in sorted(names):
            new = _normalized_or_none(old)
            if new is None or new == old:
                continue
            if new in names:
                conn.execute(sa.text("DELETE FROM classes WHERE name = :old"), {"old": old})
            else:
                conn.execute(sa.text("UPDATE classes SET name = :new WHERE name = :old"), {"new": new, "old": old})
                names.add(new)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES (:k, '1')"), {"k": _DONE})


def downgrade() -> None:
    pass  # the old spellings are not kept
