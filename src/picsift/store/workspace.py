"""A workspace: a folder with the catalog, run folders and caches. User images stay where they are."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from picsift.errors import DiskError, WorkspaceError
from picsift.store.catalog import Catalog

logger = logging.getLogger(__name__)
DEFAULT_WORKSPACE = "picsift-workspace"
WORKSPACE_ENV = "PICSIFT_WORKSPACE"


def default_workspace_path() -> Path:
    """The workspace path from $PICSIFT_WORKSPACE, else ./picsift-workspace."""
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)


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
    """A workspace folder: catalog.sqlite (or `db_url`), runs/ and cache/."""

    root: Path
    db_url: str | None = None
    _catalog: Catalog | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | Path | None = None, *, create: bool = False, db_url: str | None = None) -> Workspace:
        """Open a workspace; with create=True make it if it does not exist yet."""
        path = Path(root) if root is not None else default_workspace_path()
        if not (path / "catalog.sqlite").exists() and db_url is None:
            if not create:
                raise WorkspaceError(
                    f"no picsift workspace at {path}: run `picsift import PATH --workspace {path}` first"
                )
            if path.exists() and not path.is_dir():
                raise WorkspaceError(f"workspace path {path} exists and is not a folder")
            path.mkdir(parents=True, exist_ok=True)
        ws = cls(root=path.resolve(), db_url=db_url)
        for sub in ("runs", "cache"):
            (ws.root / sub).mkdir(exist_ok=True)
        return ws

    @property
    def catalog(self) -> Catalog:
        """The workspace's Catalog, opened on first use. WorkspaceError when its schema is newer than this picsift."""
        if self._catalog is None:
            if self.db_url is not None:
                self._catalog = Catalog(self.db_url)
            else:
                self._catalog = _sqlite_catalog(self.root / "catalog.sqlite")
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
