"""Bringing a catalog database to the schema this picsift writes, with the Alembic migrations shipped inside the
package (`picsift/store/migrations`); no alembic.ini is needed.

Opening a catalog calls `upgrade_catalog`: a catalog already at the newest revision costs one small read. One
that needs work (new, made by picsift before migrations, or an older revision) is migrated in one transaction
under a lock, so two commands opening it at once do not both migrate it: PostgreSQL takes an advisory lock,
SQLite a write lock (`BEGIN IMMEDIATE`) on a connection of its own in which DDL is transactional too.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from picsift.errors import WorkspaceError

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x7069_6373_6966  # "picsif": the advisory lock every picsift migrator takes on PostgreSQL


def alembic_config() -> Config:
    """An Alembic Config pointing at the packaged migrations (built in code: no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest migration revision this picsift knows."""
    head = _scripts().get_current_head()
    assert head is not None  # the baseline always exists
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database (None: no alembic_version table or no row, i.e. a new catalog or
    one made before migrations)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_catalog(engine: Engine, shown_url: str) -> None:
    """Migrate the catalog at `engine` to the newest revision, if it is not there yet.

    `shown_url` names the catalog in messages (password masked). WorkspaceError when the catalog was written by
    a newer picsift (a revision this one does not know), or when it cannot be upgraded (read-only, locked).
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head:
        return
    known = {s.revision for s in _scripts().walk_revisions()}
    if current is not None and current not in known:
        raise WorkspaceError(
            f"catalog {shown_url} has schema revision {current}, newer than this picsift knows ({head}): "
            "upgrade picsift"
        )
    logger.info("upgrading catalog %s from revision %s to %s", shown_url, current or "(none)", head)
    cfg = alembic_config()
    try:
        with _locked_connection(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except DBAPIError as e:
        raise WorkspaceError(f"could not upgrade catalog {shown_url} to schema revision {head}: {e.orig}") from e


@contextmanager
def _locked_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction that holds the catalog's migration lock; committed at the end."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            yield conn
        return
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    # pysqlite runs DDL outside any transaction and BEGINs lazily; this engine BEGINs IMMEDIATE itself instead.
    own = create_engine(engine.url, poolclass=NullPool)
    event.listen(own, "connect", _sqlite_manual_transactions)
    event.listen(own, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with own.begin() as conn:
            yield conn
    finally:
        own.dispose()


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver issues no BEGIN/COMMIT of its own
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
