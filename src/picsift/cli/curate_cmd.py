"""`picsift clean` (check, --apply, --undo) and `picsift export-clean`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from picsift import api
from picsift.cli.common import (
    JsonOpt,
    LabelUrlOpt,
    StrictOpt,
    WorkspaceOpt,
    console,
    handle_errors,
    print_json,
    warn_skipped,
)
from picsift.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add the `clean` and `export-clean` commands to `app`."""
    app.command("clean")(clean)
    app.command("export-clean")(export_clean)


@handle_errors(interrupted="the findings and clean report of the last finished clean are kept")
def clean(
    action_id: Annotated[int | None, typer.Argument(help="With --undo: the action to undo (default: latest).")] = None,
    workspace: WorkspaceOpt = None,
    checks: Annotated[
        str, typer.Option(help="all, or a comma list of duplicates,quality,outliers,labels,imbalance.")
    ] = "all",
    apply: Annotated[bool, typer.Option("--apply", help="Record exclusions from the last findings.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Undo a clean --apply (the latest, or ACTION_ID).")] = False,
    exclude_near_duplicates: Annotated[
        bool, typer.Option("--exclude-near-duplicates", help="Keep the best copy of each duplicate group.")
    ] = False,
    exclude_unreadable: Annotated[bool, typer.Option("--exclude-unreadable", help="Exclude unreadable files.")] = False,
    exclude_quality: Annotated[
        bool, typer.Option("--exclude-quality", help="Exclude too small, blurry, too dark/bright, near-constant.")
    ] = False,
    exclude_outliers: Annotated[bool, typer.Option("--exclude-outliers", help="Exclude outliers.")] = False,
    exclude_label_issues: Annotated[
        bool, typer.Option("--exclude-label-issues", help="Exclude images whose label looks wrong.")
    ] = False,
    extractor: Annotated[
        str | None,
        typer.Option(
            help="Embedding for near duplicates, outliers and labels: auto (default: efficientnet_lite0 when its "
            "weights are installed, else hand), hand, or any features extractor."
        ),
    ] = None,
    label_model: Annotated[
        str | None,
        typer.Option(
            help="Label-issue model: auto (logistic on a pretrained embedding; on hand features cnn from 1,000 "
            "labelled images, else linear), logistic (cross-validated logistic head on the embedding), linear "
            "(ridge on the embedding, seconds), cnn (fast CNN per fold, ~1 min, ensembled with linear)."
        ),
    ] = None,
    label_extractors: Annotated[
        str | None,
        typer.Option(
            help="Embeddings the logistic label model adds to the stage's: auto (default: every other installed "
            "pretrained backbone, only when the first model agrees with under 80% of the labels), none, or a "
            "comma list of features extractors."
        ),
    ] = None,
    near_dup_threshold: Annotated[float | None, typer.Option(help="Near-duplicate similarity (0-1).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of settings (flags override it).")] = None,
    strict: StrictOpt = False,
    label_url: LabelUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find duplicates, quality problems, outliers, label errors and imbalance; nothing is deleted.

    Writes findings.json and clean-report.html into the workspace. --apply records exclusions (training
    skips them), --undo restores them.
    """
    if apply and undo:
        raise ConfigError("use either --apply or --undo, not both")
    if action_id is not None and not undo:
        raise ConfigError(f"ACTION_ID {action_id} is only meaningful with --undo")
    if undo:
        _print_undo(api.clean_undo(action_id, workspace=workspace), json_out)
        return
    if apply:
        res = api.clean_apply(
            workspace=workspace,
            near_duplicates=exclude_near_duplicates,
            unreadable=exclude_unreadable,
            quality=exclude_quality,
            outliers=exclude_outliers,
            label_issues=exclude_label_issues,
        )
        _print_apply(res, json_out)
        return
    chosen = tuple(c.strip() for c in checks.split(",") if c.strip())
    result = api.clean(
        workspace=workspace,
        settings_file=config,
        checks=None if chosen == ("all",) else chosen,
        extractor=extractor,
        label_model=label_model,
        label_extractors=label_extractors,
        near_dup_threshold=near_dup_threshold,
        strict=strict or None,
        label_url=label_url,
    )
    warn_skipped(result.skipped)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"checked {result.n_images} images in {result.timings_s.get('total', 0):.1f}s")
    if result.embedding:
        console.print(result.embedding["text"], highlight=False)
    if not result.counts:
        console.print("no problems found")
    for kind, n in result.counts.items():
        console.print(f"  {kind:<20} {n}")
    lm = result.label_model
    if lm.get("added_extractors"):
        console.print(
            f"label model: {', '.join(lm['added_extractors'])} added to the embedding (agreement with the labels "
            f"{100 * lm['first_cv_agreement']:.0f}% -> {100 * lm['cv_agreement']:.0f}%)",
            highlight=False,
        )
    if lm.get("weak"):
        console.print(
            f"note: the label model agrees with only {100 * lm['cv_agreement']:.0f}% of the given labels, so "
            "label issues are a review queue (sorted by score in the report), not a verdict"
        )
    console.print(f"findings: {result.findings_path}\nreport:   {result.report_path}")


def _print_undo(out: api.CleanUndoResult, json_out: bool) -> None:
    if json_out:
        print_json(out.to_dict())
        return
    console.print(
        f"undid action {out.undone_action_id}: {out.restored} image(s) included again ({out.excluded_now} still "
        "excluded)"
    )


def _print_apply(res: api.CleanApplyResult, json_out: bool) -> None:
    if json_out:
        print_json(res.to_dict())
        return
    if res.action_id is None:
        console.print("nothing to exclude (already excluded, no longer true or no matching findings)")
    else:
        console.print(
            f"excluded {res.excluded} image(s) as action {res.action_id} "
            f"({', '.join(res.options)}); undo with `picsift clean --undo {res.action_id}`"
        )
    for entry in res.skipped:
        n, kind = entry["count"], str(entry["kind"]).replace("_", "-")
        console.print(f"{n} {kind} finding{'' if n == 1 else 's'} skipped: {entry['reason']}", highlight=False)
    if res.rekept:
        console.print(
            f"{res.rekept} duplicate group(s) keep another copy: the one to keep was excluded or removed since "
            "`picsift clean` ran",
            highlight=False,
        )


@handle_errors
def export_clean(
    dest: Annotated[str, typer.Argument(help="New folder (or empty prefix, s3://bucket/clean/) for the cleaned copy.")],
    workspace: WorkspaceOpt = None,
    by_split: Annotated[bool, typer.Option("--by-split", help="DEST/<split>/<class>/ instead of DEST/<class>/.")] = (
        False
    ),
    link: Annotated[
        bool,
        typer.Option(
            "--link",
            help="Hard-link instead of copying (no extra disk space; same file system only). A hard link is the "
            "same file as your original: editing or overwriting an exported image changes the original too.",
        ),
    ] = False,
    copy: Annotated[bool, typer.Option("--copy", hidden=True, help="Copy files (the default; kept for scripts).")] = (
        False
    ),
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the clean labelled images (not excluded) to DEST, one folder per class, as copies (--link: hard
    links)."""
    if link and copy:
        raise ConfigError("--link and --copy exclude each other: copies are the default, --link hard-links")
    out = api.export_clean(dest, workspace=workspace, by_split=by_split, link=link, strict=strict)
    warn_skipped(out.skipped)
    if json_out:
        print_json(out.to_dict())
        return
    console.print(
        f"wrote {out.images} images in {len(out.classes)} classes to {out.dest} "
        f"({out.hard_links} hard links, {out.copies} copies)"
    )
