"""Stage 1, COLLECT: folders, CSV manifests, URL lists and archives -> catalog rows.

`run(ImportConfig) -> ImportResult` discovers the source's files, reads, hashes and decodes them in a
thread pool, then writes new rows, exact duplicates, labels and splits in one transaction. The user's
files are only ever read; downloads and archive contents are stored inside the workspace.
"""

from __future__ import annotations

import getpass
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from picsift import progress
from picsift.config import ImportConfig
from picsift.data.formats import describe
from picsift.data.storage import is_remote
from picsift.data.walk import reason_kind
from picsift.errors import ConfigError, DatasetError, LabelError, WorkspaceError
from picsift.ingest.delimited import single_line
from picsift.ingest.files import DownloadSettings, Probed, read_entry
from picsift.ingest.rollback import ImportRollback
from picsift.ingest.sources import Discovery, Entry, discover
from picsift.ingest.splits import SPLITS, check_fractions, normalize_split
from picsift.ingest.status import status
from picsift.ingest.writer import known_paths, write_import
from picsift.labels_text import normalize_label
from picsift.pools import thread_pool
from picsift.store import Workspace, default_workspace_path

logger = logging.getLogger(__name__)

__all__ = ["FileIssue", "ImportResult", "run", "status"]


@dataclass(frozen=True)
class FileIssue:
    """A file not imported, or imported unreadable, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The issue as JSON-ready data."""
        return {"path": self.path, "reason": self.reason}


@dataclass
class ImportResult:
    """What an import did. Every file the source holds is in exactly one of: added, duplicates,
    unreadable, already_present, updated, skipped."""

    source: str
    kind: str  # folder | split-folders | flat | csv | urls | archive | file
    workspace: Path
    import_id: int | None = None
    added: int = 0  # new readable images (first copy of their bytes)
    duplicates: int = 0  # new rows whose bytes the catalog already had (`duplicate_of` set)
    already_present: int = 0  # same path (or URL) and same bytes as an existing row: nothing added
    updated: int = 0  # a known path whose bytes changed (or a failed download that now worked)
    unreadable: list[FileIssue] = field(default_factory=list)  # new rows that cannot be decoded
    skipped: list[FileIssue] = field(default_factory=list)  # files not recorded (hidden, outside classes)
    labeled: int = 0  # new readable rows with a label
    classes: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # new readable rows per split
    split_origins: dict[str, int] = field(default_factory=dict)  # source | auto | manual
    seconds: float = 0.0

    @property
    def rows_added(self) -> int:
        """Catalog rows the import created: new images, duplicates and unreadable files."""
        return self.added + self.duplicates + len(self.unreadable)

    @property
    def files_seen(self) -> int:
        """Every file the source held (each counted once in one of the result's categories)."""
        return self.rows_added + self.already_present + self.updated + len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, with unreadable and skipped files counted (skipped ones by reason)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "workspace": str(self.workspace),
            "import_id": self.import_id,
            "added": self.added,
            "duplicates": self.duplicates,
            "already_present": self.already_present,
            "updated": self.updated,
            "unreadable": len(self.unreadable),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(Counter(reason_kind(i.reason) for i in self.skipped).most_common()),
            "labeled": self.labeled,
            "classes": self.classes,
            "splits": self.splits,
            "split_origins": self.split_origins,
            "seconds": round(self.seconds, 3),
            "unreadable_files": [i.to_dict() for i in self.unreadable],
            "skipped_files": [i.to_dict() for i in self.skipped],
        }


def _annotator() -> str:
    try:
        return os.environ.get("PICSIFT_ANNOTATOR") or getpass.getuser() or "picsift"
    except (KeyError, OSError):  # no user name in containers without /etc/passwd entries
        return "picsift"


def _validate(cfg: ImportConfig) -> str | None:
    cfg.validate()
    check_fractions(cfg.val_fraction, cfg.test_fraction)
    if cfg.label is not None and not cfg.label.strip():
        raise ConfigError("--label must not be empty")
    if cfg.split is None:
        return None
    split = normalize_split(cfg.split)
    if split is None:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
    return split


def run(cfg: ImportConfig) -> ImportResult:
    """Import `cfg.source` into the workspace; raises DatasetError (nothing written) when the source
    itself is malformed or holds nothing to import, but records each bad file as unreadable and carries on.
    A failed import leaves the workspace as it was, and creates none (`picsift.ingest.rollback`)."""
    start = time.perf_counter()
    split = _validate(cfg)
    label = normalize_label(single_line(cfg.label)) if cfg.label else None
    source: Path | str = cfg.source if is_remote(cfg.source) else Path(os.path.expanduser(cfg.source))
    if isinstance(source, Path) and not os.path.lexists(source):  # a typo must not leave a new, empty workspace
        raise DatasetError(f"{source}: no such file or folder")
    root = cfg.workspace if cfg.workspace is not None else default_workspace_path()
    with ImportRollback(root) as rollback:
        ws = Workspace.open(root, create=True)
        try:
            return _import(cfg, ws, source, label, split, rollback, start)
        finally:
            ws.close()


def _discover(cfg: ImportConfig, ws: Workspace, source: Path | str, label: str | None, split: str | None) -> Discovery:
    """The source's entries, labels in normal form, the workspace itself left out; DatasetError when it holds
    nothing to import (naming what was skipped and why)."""
    found = discover(
        source, workspace_files=ws.root / "files", label=label, split=split, max_expansion=cfg.archive_max_expansion
    )
    _normalize_labels(found)
    if isinstance(source, Path):
        _leave_out_workspace(found, source, ws.root)
    if not found.entries:
        raise DatasetError(nothing_to_import(source, found.skipped))
    return found


def _import(
    cfg: ImportConfig, ws: Workspace, source: Path | str, label: str | None, split: str | None,
    rollback: ImportRollback, start: float,
) -> ImportResult:  # fmt: skip
    """Discover, read and write one import into the open workspace `ws` (see `run`)."""
    found = _discover(cfg, ws, source, label, split)
    catalog = ws.catalog
    files_dir = ws.root / "files"
    known, downloaded = known_paths(catalog)
    todo = [e for e in found.entries if e.url is None or e.url not in downloaded]
    already = len(found.entries) - len(todo)
    downloads = DownloadSettings(files_dir / "urls", cfg.url_timeout_s, cfg.url_retries, cfg.url_max_bytes)
    any_urls = any(e.url is not None or is_remote(e.path) for e in todo)
    workers = 8 if any_urls else max(2, min(8, os.cpu_count() or 2))
    what = "downloading" if any_urls else "reading images"
    with thread_pool(workers, thread_name_prefix="picsift-import") as pool:
        probed: list[Probed] = list(
            progress.track(pool.map(lambda e: read_entry(e, known, downloads), todo), what, total=len(todo))
        )
    try:
        written = write_import(
            catalog,
            probed,
            source=found.source,
            kind=found.kind,
            annotator=_annotator(),
            seed=cfg.seed,
            val_fraction=cfg.val_fraction,
            test_fraction=cfg.test_fraction,
        )
    except IntegrityError as e:
        raise WorkspaceError(
            f"the catalog in {ws.root} changed during this import (another import at the same time?); "
            "nothing was written: run the import again"
        ) from e
    rollback.commit()
    result = ImportResult(
        source=found.source,
        kind=found.kind,
        workspace=ws.root,
        import_id=written.import_id,
        added=written.added,
        duplicates=written.duplicates,
        already_present=written.already_present + already,
        updated=written.updated,
        unreadable=[FileIssue(p, r) for p, r in written.unreadable],
        skipped=[FileIssue(p, r) for p, r in found.skipped + written.skipped],
        labeled=written.labeled,
        classes=sorted(written.classes),
        splits={k: written.splits[k] for k in SPLITS if written.splits[k]},
        split_origins=dict(sorted(written.split_origins.items())),
    )
    result.seconds = time.perf_counter() - start
    _record_counts(catalog, result)
    logger.info(
        "imported %s: %d added, %d duplicates, %d unreadable, %d already present, %d skipped",
        found.source, result.added, result.duplicates, len(result.unreadable),
        result.already_present, len(result.skipped),
    )  # fmt: skip
    return result


def nothing_to_import(source: Path | str, skipped: list[tuple[str, str]]) -> str:
    """`photos: found nothing to import: no image files (JPEG, PNG, ...); 12 files skipped: 10 not an image file
    (.txt), 2 hidden or system file`: the skipped files counted by reason (the full reason while a kind has at
    most 3 different ones, such as the suffixes of files that are no images, else by kind)."""
    if not skipped:
        return f"{source}: found nothing to import (it holds no files)"
    reasons = Counter(why for _, why in skipped)
    details: dict[str, set[str]] = {}
    for why in reasons:
        details.setdefault(reason_kind(why), set()).add(why)
    counts: Counter[str] = Counter()
    for why, n in reasons.items():
        counts[why if len(details[reason_kind(why)]) <= 3 else reason_kind(why)] += n
    listed = ", ".join(f"{n} {why}" for why, n in counts.most_common())
    return f"{source}: found nothing to import: no image files ({describe()}); {len(skipped)} files skipped: {listed}"


def _normalize_labels(found: Discovery) -> None:
    """One spelling per class, whichever source a label came from: a macOS folder name (NFD) and a
    manifest cell (NFC) naming the same class become one label (`normalize_label`)."""
    found.entries = [e if e.label is None else replace(e, label=_entry_label(e)) for e in found.entries]


def _entry_label(entry: Entry) -> str:
    """The entry's label in normal form; DatasetError naming the entry (file, manifest line) when it is no label
    (longer than `MAX_LABEL_CHARS`, or holding a line break: a folder named so), before anything is written."""
    assert entry.label is not None
    try:
        return normalize_label(single_line(entry.label))
    except LabelError as e:
        raise DatasetError(f"{entry.where or entry.path}: {e}") from e


def _leave_out_workspace(found: Discovery, source: Path, ws_root: Path) -> None:
    """`picsift import .` with the workspace inside the folder must not import the catalog itself."""
    if found.kind in ("archive", "csv", "urls", "file") or not source.is_dir():
        return
    real_source, real_ws = os.path.realpath(source), os.path.realpath(ws_root)
    if os.path.commonpath([real_source, real_ws]) != real_source or real_source == real_ws:
        return
    prefix = os.path.join(os.path.abspath(source), os.path.relpath(real_ws, real_source)) + os.sep
    inside = [e for e in found.entries if e.path.startswith(prefix)]
    if inside:
        found.entries = [e for e in found.entries if not e.path.startswith(prefix)]
        found.skipped += [(e.path, "inside the picsift workspace") for e in inside]
    found.skipped = [
        (path, "inside the picsift workspace" if path.startswith(prefix) else why) for path, why in found.skipped
    ]


def _record_counts(catalog: Any, result: ImportResult) -> None:
    from picsift.store.schema import ImportRecord

    counts = {k: v for k, v in result.to_dict().items() if not k.endswith("_files")}
    with catalog.session() as s:
        record = s.get(ImportRecord, result.import_id)
        if record is not None:
            record.counts = counts
