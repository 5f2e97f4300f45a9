"""1 COLLECT: import images into the catalog, and what the workspace holds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, workspace_path

if TYPE_CHECKING:
    from picsift.ingest import ImportResult


@dataclass(frozen=True)
class WorkspaceInit:
    """A workspace made or opened by `init_workspace` (`picsift init`): its folder, where its catalog lives
    (`catalog`: the URL with its password masked), the back end ("sqlite" or "postgresql"), the catalog's
    schema revision, the images it already holds and whether this call created the workspace."""

    workspace: str
    catalog: str
    backend: str
    schema_revision: str
    images: int
    created: bool

    def to_dict(self) -> dict[str, Any]:
        """The `picsift init --json` object."""
        return dataclasses.asdict(self)


def init_workspace(*, workspace: WorkspaceArg = None, catalog: str | None = None) -> WorkspaceInit:
    """Create a workspace (`picsift init`), its catalog in `catalog` (a SQLAlchemy URL such as
    postgresql+psycopg://user@host/db) or, by default, in the folder's catalog.sqlite; then open the catalog,
    creating or upgrading its tables.

    The URL is recorded, without any password, in the workspace's workspace.json, and every command that
    opens the workspace uses it. A PostgreSQL password comes from $PGPASSWORD, ~/.pgpass or
    $PICSIFT_CATALOG_PASSWORD (a password in `catalog` serves this call only). Running it again on the same
    workspace changes nothing. Raises ConfigError (not a SQLite or PostgreSQL URL), WorkspaceError (the
    workspace already has another catalog, the database cannot be reached, or holds a newer picsift's catalog).
    """
    from picsift.store import Workspace, default_workspace_path, is_workspace
    from picsift.store.migrate import current_revision

    root = workspace_path(workspace) or default_workspace_path()
    existed = is_workspace(root)
    ws = Workspace.open(root, create=True, db_url=catalog)
    try:
        cat = ws.catalog
        with cat.engine.connect() as conn:
            revision = current_revision(conn) or ""
        return WorkspaceInit(
            workspace=str(ws.root),
            catalog=cat.url,
            backend=cat.backend,
            schema_revision=revision,
            images=cat.count(),
            created=not existed,
        )
    finally:
        ws.close()


def import_images(
    source: str | Path,
    *,
    workspace: WorkspaceArg = None,
    label: str | None = None,
    split: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    url_timeout_s: float = 15.0,
    url_retries: int = 2,
    url_max_bytes: int = 20 * 1024 * 1024,
    archive_max_expansion: float = 100.0,
) -> ImportResult:
    """Import a folder, CSV manifest, URL list or zip/tar archive into the workspace catalog (`picsift import`).

    Files are referenced in place, never changed. A failed import creates no workspace and leaves an existing one
    as it was. Raises ConfigError (bad split or fractions), DatasetError (a source that holds no images: what was
    skipped and why; a malformed manifest, URL list or quoting: file and line), UnsafePathError (an archive member
    escaping its folder, an archive expanding beyond `archive_max_expansion` times its size), WorkspaceError.
    """
    from picsift import ingest
    from picsift.config import ImportConfig

    cfg = ImportConfig(
        source=str(source),
        workspace=workspace_path(workspace),
        label=label,
        split=split,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        url_timeout_s=url_timeout_s,
        archive_max_expansion=archive_max_expansion,
        url_retries=url_retries,
        url_max_bytes=url_max_bytes,
    )
    return ingest.run(cfg)


@dataclass(frozen=True)
class WorkspaceStatus:
    """What a workspace holds (`picsift status`). Counts are images; `splits` counts usable images
    (readable, not excluded) as {split: {class: n}}; `unreadable` lists {path, reason}; `missing` lists
    readable rows whose file is gone from disk; `exclusions` is {reason: n} of active exclusions;
    `sources` is {source kind: n}; `imports` lists past imports {id, source, kind, started_at, counts}."""

    workspace: str
    images: int
    readable: int
    unreadable: list[dict[str, Any]]
    labeled: int
    unlabeled: int
    exact_duplicates: int
    excluded: int
    classes: list[str]
    splits: dict[str, dict[str, int]]
    catalog_hash: str
    missing: list[str]
    exclusions: dict[str, int]
    split_origins: dict[str, int]
    sources: dict[str, int]
    imports: list[dict[str, Any]]
    catalog: str = ""  # where the catalog lives: its database URL, password masked
    empty_classes: list[str] = field(default_factory=list)  # declared classes that no image has as its label
    exclusion_actions: dict[str, int] = field(default_factory=dict)  # {action id: images it excludes}

    def to_dict(self) -> dict[str, Any]:
        """The `picsift status --json` object (same keys, same order)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def status(*, workspace: WorkspaceArg = None) -> WorkspaceStatus:
    """Images, classes, counts per split and class, unreadable and missing files, exclusions, past imports.

    Raises WorkspaceError when there is no workspace at that path.
    """
    from picsift import ingest

    return WorkspaceStatus(**ingest.status(workspace))


def set_storage_options(options: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Options of the object-storage file systems (s3fs, gcsfs, adlfs: `anon`, `endpoint_url`, ...) for every
    URL this process reads or writes, over those of $PICSIFT_STORAGE_OPTIONS (a JSON object); `picsift
    --storage-option KEY=VALUE`. `options`: a dict, or `KEY=VALUE` texts whose values are read as JSON when they
    are JSON (`anon=true` -> True). Returns the options set. Raises StorageError for a text without `=`.
    """
    from picsift.data.storage import parse_options, set_options

    parsed = dict(options) if isinstance(options, dict) else parse_options(options)
    set_options(parsed)
    return parsed
