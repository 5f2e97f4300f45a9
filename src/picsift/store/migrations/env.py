"""Alembic's environment for the catalog: run by `picsift.store.migrate.upgrade_catalog` on a connection it
opened (and locked) itself; there is no alembic.ini."""

from __future__ import annotations

from alembic import context

import picsift.store.feedback  # noqa: F401  (registers the feedback table on the shared metadata)
from picsift.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
