"""A failed import leaves the workspace folder as it found it.

`picsift import` opens (and, the first time, creates) its workspace before it reads the source: an archive is
extracted into the workspace. When the import then fails before writing the catalog (a source that holds
nothing to import, a malformed manifest, a bad label), `ImportRollback` removes what the import made:
- a workspace that did not exist: the folders made for it (from the highest one that did not exist), or, in a
  folder that existed but held no workspace, the entries the import added to it;
- an existing workspace: the archives it extracted or downloaded (`files/archives`, `files/downloads`); its
  catalog was not written.

A new workspace whose catalog holds an import after all (another import into the same new folder at the same
time) is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from types import TracebackType

from picsift.store import is_workspace
from picsift.store.workspace import SQLITE_CATALOG

logger = logging.getLogger(__name__)

_EXTRACTED = (("files", "archives"), ("files", "downloads"))


def _names(folder: Path) -> frozenset[str] | None:
    """The entries of `folder`, or None when it is no folder."""
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return None


def _highest_missing(path: Path) -> Path | None:
    """The highest folder of `path` (itself included) that does not exist, or None when it exists."""
    missing = None
    for p in [path, *path.parents]:
        if os.path.lexists(p):
            break
        missing = p
    return missing


def _catalog_has_imports(root: Path) -> bool:
    """Whether the SQLite catalog in `root` records an import (False when there is none, or no table yet)."""
    path = root / SQLITE_CATALOG
    if not path.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM imports)").fetchone()[0])
    except sqlite3.Error:
        return False


def _remove(path: Path) -> None:
    """Remove `path` if it is there; never raises (a rollback must not hide the error that caused it: on a
    read-only file system even unlinking a missing file fails, with EROFS)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        path.unlink()
    except OSError as e:
        logger.warning("could not remove %s after the failed import: %s", path, e)


class ImportRollback:
    """`with ImportRollback(root) as rollback: ...; rollback.commit()`: on an exception raised before `commit`
    (called once the catalog is written), what the import made in the workspace folder `root` is removed
    (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.was_workspace = is_workspace(self.root)
        self.created_from = _highest_missing(self.root)
        self.names = _names(self.root)
        self.extracted = {sub: _names(self.root.joinpath(*sub)) for sub in _EXTRACTED}
        self.committed = False

    def commit(self) -> None:
        """The catalog is written: keep everything from now on."""
        self.committed = True

    def __enter__(self) -> ImportRollback:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and not self.committed:
            self.undo()

    def undo(self) -> None:
        """Remove what the import made (the workspace's catalog must be closed)."""
        if not self.was_workspace and _catalog_has_imports(self.root):
            return  # another import wrote this new workspace meanwhile
        if not self.was_workspace and self.created_from is not None:
            logger.info("removing %s: the import failed", self.created_from)
            _remove(self.created_from)
            return
        if not self.was_workspace and self.names is not None:
            for name in sorted((_names(self.root) or frozenset()) - self.names):
                _remove(self.root / name)
            return
        if self.names is not None and "files" not in self.names:
            _remove(self.root / "files")
            return
        for sub, before in self.extracted.items():
            folder = self.root.joinpath(*sub)
            if before is None:
                _remove(folder)
                continue
            for name in sorted((_names(folder) or frozenset()) - before):
                _remove(folder / name)
