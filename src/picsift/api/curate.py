"""2 CLEAN: find problems (duplicates, quality, outliers, label issues, imbalance), exclude them reversibly,
export the clean set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, workspace_path

if TYPE_CHECKING:
    from picsift.curate import CleanResult
    from picsift.data.available import SkippedImage


def clean(*, workspace: WorkspaceArg = None, settings_file: str | Path | None = None, **settings: Any) -> CleanResult:
    """Run the clean checks (`picsift clean`); writes findings.json and clean-report.html into the workspace.

    settings: CleanConfig fields (checks, extractor, label_model, near_dup_threshold, strict, ...); a None value
    means "not given", so the YAML `settings_file` (if any), else the default, applies. Nothing is deleted.
    Raises ConfigError (unknown setting or check, unreadable settings file), WorkspaceError, DatasetError
    (too few images for a check), MissingImagesError with strict=True.
    """
    from picsift import curate
    from picsift.config import CleanConfig, load_yaml_overrides

    return curate.run(load_yaml_overrides(CleanConfig, settings_file, workspace=workspace_path(workspace), **settings))


@dataclass(frozen=True)
class CleanApplyResult:
    """One `picsift clean --apply` action: `action_id` is None when nothing new was excluded. `options` are the
    ApplyOptions chosen; `findings_stale` is True when the catalog changed since the checks ran. `skipped`:
    [{"kind", "reason", "count", "image_ids"}], findings left alone because they no longer hold (an image
    relabelled away from the label a label issue was about, ...); `rekept`: duplicate groups whose kept copy is
    gone, now keeping another."""

    action_id: int | None
    excluded: int
    already_excluded: int
    missing: int
    options: list[str]
    findings_stale: bool
    skipped: list[dict[str, Any]] = field(default_factory=list)
    rekept: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "action_id": self.action_id,
            "excluded": self.excluded,
            "already_excluded": self.already_excluded,
            "missing": self.missing,
            "options": self.options,
            "findings_stale": self.findings_stale,
            "skipped": self.skipped,
            "rekept": self.rekept,
        }


def clean_apply(
    *,
    workspace: WorkspaceArg = None,
    near_duplicates: bool = False,
    unreadable: bool = False,
    quality: bool = False,
    outliers: bool = False,
    label_issues: bool = False,
) -> CleanApplyResult:
    """Record exclusions from the last findings as one undoable action (`picsift clean --apply`).

    near_duplicates keeps the best copy of each duplicate group. Raises ConfigError when no kind is chosen,
    WorkspaceError when the checks have not run (no findings.json).
    """
    from picsift import curate

    opts = curate.ApplyOptions(
        near_duplicates=near_duplicates,
        unreadable=unreadable,
        quality=quality,
        outliers=outliers,
        label_issues=label_issues,
    )
    return CleanApplyResult(**curate.apply(workspace, opts))


@dataclass(frozen=True)
class CleanUndoResult:
    """`undone_action_id` was undone: `restored` images are included again, `excluded_now` remain excluded."""

    undone_action_id: int
    restored: int
    excluded_now: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {"undone_action_id": self.undone_action_id, "restored": self.restored, "excluded_now": self.excluded_now}


def clean_undo(action_id: int | None = None, *, workspace: WorkspaceArg = None) -> CleanUndoResult:
    """Undo a clean action, the latest when `action_id` is None (`picsift clean --undo [ACTION_ID]`).

    Raises WorkspaceError when no action is in effect or `action_id` is unknown.
    """
    from picsift import curate

    return CleanUndoResult(**curate.undo(workspace, action_id))


@dataclass(frozen=True)
class CleanExport:
    """Where `export_clean` wrote the images: `images` files (`hard_links` + `copies`), {class: n}, and the
    catalog images it skipped because their file is missing on disk."""

    dest: str
    images: int
    hard_links: int
    copies: int
    classes: dict[str, int]
    skipped: list[SkippedImage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, with the skipped images' paths and reasons."""
        return {
            "dest": self.dest,
            "images": self.images,
            "hard_links": self.hard_links,
            "copies": self.copies,
            "classes": self.classes,
            "skipped_images": [s.to_dict() for s in self.skipped],
        }


def export_clean(
    dest: str | Path,
    *,
    workspace: WorkspaceArg = None,
    by_split: bool = False,
    link: bool = False,
    strict: bool = False,
) -> CleanExport:
    """Write the clean labelled images (not excluded) to DEST, DEST/<class>/ or with `by_split`
    DEST/<split>/<class>/, as copies (`link`: hard links where the file system allows, which ARE the originals:
    editing one edits the other).

    DEST may be a URL in object storage (`s3://bucket/clean/`) where nothing is stored yet: the copy is uploaded
    with a manifest written last. Raises WorkspaceError (DEST exists and is not empty, nothing to export),
    MissingImagesError with `strict`, StorageError (a URL that cannot be written).
    """
    from picsift import curate
    from picsift.data.available import SkippedImage

    out = curate.export_clean(workspace, dest, by_split=by_split, link=link, strict=strict)
    skipped = [SkippedImage(**s) for s in out.pop("skipped_images")]
    return CleanExport(**out, skipped=skipped)
