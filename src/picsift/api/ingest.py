"""1 COLLECT: import images into the catalog, and what the workspace holds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, workspace_path

if TYPE_CHECKING:
    from picsift.ingest import ImportResult


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

    Files are referenced in place, never changed. Raises ConfigError (bad split or fractions), DatasetError
    (a source that holds no images, a malformed manifest: file and line), UnsafePathError (an archive member
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

    def to_dict(self) -> dict[str, Any]:
        """The `picsift status --json` object (same keys, same order)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def status(*, workspace: WorkspaceArg = None) -> WorkspaceStatus:
    """Images, classes, counts per split and class, unreadable and missing files, exclusions, past imports.

    Raises WorkspaceError when there is no workspace at that path.
    """
    from picsift import ingest

    return WorkspaceStatus(**ingest.status(workspace))
