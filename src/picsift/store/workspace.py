"""A workspace: a folder with the catalog, run folders and caches. User images stay where they are.

The catalog is `catalog.sqlite` in the folder, unless the workspace config `workspace.json` names a database
(`{"catalog": "postgresql+psycopg://user@host/db"}`, written by `picsift init --catalog`): then every command
that opens the workspace uses that database. The config never holds a password (see `picsift.store.catalog_url`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.errors import DiskError, WorkspaceError
from picsift.jsonio import write_json
from picsift.store import catalog_url
from picsift.store.catalog import Catalog

logger = logging.getLogger(__name__)
DEFAULT_WORKSPACE = "picsift-workspace"
WORKSPACE_ENV = "PICSIFT_WORKSPACE"
SQLITE_CATALOG = "catalog.sqlite"
CONFIG_FILE = "workspace.json"


def default_workspace_path() -> Path:
    """The workspace path from $PICSIFT_WORKSPACE, else ./picsift-workspace."""
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)


def is_workspace(path: str | Path) -> bool:
    """Whether `path` holds a picsift workspace (a SQLite catalog, or a config naming a catalog database)."""
    root = Path(path)
    return (root / SQLITE_CATALOG).exists() or (root / CONFIG_FILE).is_file()


def read_config(root: Path) -> dict[str, Any]:
    """The workspace config ({} when there is none). WorkspaceError when it is not a JSON object."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WorkspaceError(f"{path}: not a readable workspace config ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("catalog", ""), str):
        raise WorkspaceError(f'{path}: expected a JSON object like {{"catalog": "postgresql+psycopg://..."}}')
    return data


def _sqlite_catalog(path: Path) -> Catalog:
    """The catalog in `path`. On a read-only file system SQLite cannot make the shared-memory file WAL mode needs,
    so there it is opened read-only and immutable: reads work, and a write raises DiskError (read-only)."""
    try:
        return Catalog(f"sqlite:///{path}")
    except DiskError:
        if not (path.is_file() and _read_only_file_system(path)):
            raise
    logger.info("%s is on a read-only file system: opened read-only", path)
    return Catalog(f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true")


def _read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False


@dataclass
class Workspace:
    """A workspace folder: its catalog (catalog.sqlite, or the database its config names), runs/ and cache/.

    `db_url` is the catalog database URL when it is not the folder's catalog.sqlite; it may carry a password
    (given to this process only), so it is left out of repr; `catalog_shown` is the masked form.
    """

    root: Path
    db_url: str | None = field(default=None, repr=False)
    _catalog: Catalog | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | Path | None = None, *, create: bool = False, db_url: str | None = None) -> Workspace:
        """Open a workspace; with create=True make it if it does not exist yet.

        `db_url` (a SQLAlchemy URL of a PostgreSQL or SQLite database) puts a new workspace's catalog in that
        database and records it, password left out, in the workspace config. WorkspaceError when there is no
        workspace (and not `create`), when the path is a file, or when `db_url` differs from the catalog the
        workspace already has; ConfigError for a URL that names neither back end.
        """
        path = Path(root) if root is not None else default_workspace_path()
        if path.exists() and not path.is_dir():
            raise WorkspaceError(f"workspace path {path} exists and is not a folder")
        recorded = read_config(path).get("catalog") or None
        if db_url is not None:
            _check_same_catalog(path, recorded, db_url)
        elif not is_workspace(path) and not create:
            raise WorkspaceError(
                f"no picsift workspace at {path}: run `picsift import PATH --workspace {path}` "
                f"(or `picsift init {path}`) first"
            )
        path.mkdir(parents=True, exist_ok=True)
        if db_url is not None and recorded is None:
            write_json(path / CONFIG_FILE, {"catalog": catalog_url.without_password(db_url)})
        ws = cls(root=path.resolve(), db_url=db_url or recorded)
        for sub in ("runs", "cache"):
            (ws.root / sub).mkdir(exist_ok=True)
        return ws

    @property
    def catalog_shown(self) -> str:
        """The catalog's URL as messages show it (password masked)."""
        return catalog_url.shown(self.db_url) if self.db_url else f"sqlite:///{self.root / SQLITE_CATALOG}"

    @property
    def catalog(self) -> Catalog:
        """The workspace's Catalog, opened on first use. WorkspaceError when its schema is newer than this picsift
        or its database cannot be reached."""
        if self._catalog is None:
            if self.db_url is not None:
                self._catalog = Catalog(self.db_url)
            else:
                self._catalog = _sqlite_catalog(self.root / SQLITE_CATALOG)
        return self._catalog

    @property
    def runs_dir(self) -> Path:
        """runs/: one folder per training run."""
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        """cache/: decoded images and features cached between commands."""
        return self.root / "cache"

    def close(self) -> None:
        """Close the catalog if it was opened."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def _check_same_catalog(path: Path, recorded: str | None, db_url: str) -> None:
    """WorkspaceError when the workspace at `path` already has a catalog other than `db_url`."""
    wanted = catalog_url.without_password(db_url)
    if recorded is not None and catalog_url.without_password(recorded) != wanted:
        raise WorkspaceError(
            f"workspace {path} already keeps its catalog in {catalog_url.shown(recorded)}, "
            f"not {catalog_url.shown(db_url)}"
        )
    if recorded is None and (path / SQLITE_CATALOG).exists():
        raise WorkspaceError(
            f"workspace {path} already keeps its catalog in {path / SQLITE_CATALOG}; "
            f"a workspace cannot move to {catalog_url.shown(db_url)}"
        )
