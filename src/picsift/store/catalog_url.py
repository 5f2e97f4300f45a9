"""Catalog database URLs: which back ends picsift runs on, where a PostgreSQL password comes from, and the masked
form every message and file shows.

A password never needs to be in the URL: psycopg (libpq) reads $PGPASSWORD and ~/.pgpass itself, and picsift adds
$PICSIFT_CATALOG_PASSWORD to a URL that has none. A password given in the URL is used by the process that got
it, but is never written to the workspace config nor printed (`shown` masks it as ***).
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from picsift.errors import ConfigError

PASSWORD_ENV = "PICSIFT_CATALOG_PASSWORD"
BACKENDS = ("sqlite", "postgresql")
PASSWORD_SOURCES = f"$PGPASSWORD, ~/.pgpass or ${PASSWORD_ENV}"


def parse(url: str | URL) -> URL:
    """`url` as a SQLAlchemy URL; `postgres://` and `postgresql://` get the psycopg 3 driver.

    ConfigError when it is not a database URL, or names a back end other than SQLite or PostgreSQL.
    """
    try:
        parsed = url if isinstance(url, URL) else make_url(str(url).strip())
    except ArgumentError as e:
        raise ConfigError(
            f"not a catalog URL: {shown(str(url))!r} (expected e.g. postgresql+psycopg://user@host/db)"
        ) from e
    backend = parsed.get_backend_name()
    if parsed.drivername in ("postgres", "postgresql"):  # no driver named: psycopg 3 (SQLAlchemy's is psycopg2)
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in BACKENDS:
        raise ConfigError(f"the catalog runs on SQLite or PostgreSQL, not {backend!r} ({shown(parsed)})")
    return parsed


def shown(url: str | URL) -> str:
    """The URL with its password replaced by *** (what messages, logs and files show)."""
    try:
        return (url if isinstance(url, URL) else make_url(str(url))).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def without_password(url: str | URL) -> str:
    """The URL as the workspace config stores it: no password at all."""
    return parse(url)._replace(password=None).render_as_string(hide_password=False)


def with_password(url: str | URL) -> URL:
    """The URL to connect with: a PostgreSQL URL without a password gets $PICSIFT_CATALOG_PASSWORD if set
    (otherwise libpq looks in $PGPASSWORD and ~/.pgpass)."""
    parsed = parse(url)
    secret = os.environ.get(PASSWORD_ENV)
    if parsed.get_backend_name() == "postgresql" and parsed.password is None and secret:
        parsed = parsed.set(password=secret)
    return parsed


def is_postgres(url: str | URL) -> bool:
    """Whether `url` names a PostgreSQL catalog."""
    return parse(url).get_backend_name() == "postgresql"
