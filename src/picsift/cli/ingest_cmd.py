"""`picsift init`, `picsift import`, `picsift status`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from picsift import api
from picsift.cli.common import JsonOpt, WorkspaceOpt, console, handle_errors, print_json

_SHOW = 15  # problem files listed in the terminal; --json lists them all


def register(app: typer.Typer) -> None:
    """Add the `init`, `import` and `status` commands to `app`."""
    app.command("init")(init)
    app.command("import")(import_)
    app.command("status")(status)


def _shown(path: str) -> str:
    """A path safe for the terminal: undecodable bytes shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if isinstance(path, str) else str(path)


def _print_issues(title: str, issues: list[dict[str, Any]]) -> None:
    if not issues:
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for item in issues[:_SHOW]:
        table.add_row(_shown(item["path"]), item["reason"] or "")
    if len(issues) > _SHOW:
        table.add_row(f"... and {len(issues) - _SHOW} more (see --json)", "")
    console.print(table)


@handle_errors
def init(
    workspace: Annotated[
        Path | None,
        typer.Argument(
            help="Workspace folder (default ./picsift-workspace or $PICSIFT_WORKSPACE).", show_default=False
        ),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="Keep the catalog in this database, e.g. postgresql+psycopg://user@host/db (default: "
            "catalog.sqlite in the workspace). The password comes from $PGPASSWORD, ~/.pgpass or "
            "$PICSIFT_CATALOG_PASSWORD and is never stored."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a workspace, its catalog in the folder (SQLite) or in a PostgreSQL database shared by several machines."""
    result = api.init_workspace(workspace=workspace, catalog=catalog)
    if json_out:
        print_json(result.to_dict())
        return
    verb = "created" if result.created else "opened"
    console.print(f"{verb} workspace [bold]{escape(_shown(result.workspace))}[/]", markup=True, highlight=False)
    console.print(
        f"  catalog: {result.catalog} ({result.backend}, schema revision {result.schema_revision}, "
        f"{result.images} images)",
        highlight=False,
        soft_wrap=True,
    )


@handle_errors(interrupted="nothing was added to the catalog (an import is written in one transaction)")
def import_(
    path: Annotated[str, typer.Argument(help="Folder, CSV manifest (path,label[,split]), .txt URL list, zip/tar.")],
    workspace: WorkspaceOpt = None,
    label: Annotated[str | None, typer.Option(help="Give every imported image this label.")] = None,
    split: Annotated[str | None, typer.Option(help="Put every imported image in this split: train|val|test.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the stratified train/val/test split.")] = 0,
    val_fraction: Annotated[float, typer.Option(help="Share of each class for validation (auto splits).")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Share of each class for testing (auto splits).")] = 0.1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait on each network operation (URL lists).")] = 15.0,
    retries: Annotated[int, typer.Option(help="Retries of a failed download (timeouts, 5xx).")] = 2,
    max_expansion: Annotated[
        float,
        typer.Option(
            help="An archive may expand to at most this many times its own size (zip bombs are refused; images "
            "barely compress, so the default is far above real datasets)."
        ),
    ] = 100.0,
    json_out: JsonOpt = False,
) -> None:
    """Import images into the workspace catalog; your files are referenced in place, never changed."""
    result = api.import_images(
        path,
        workspace=workspace,
        label=label,
        split=split,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        url_timeout_s=timeout,
        url_retries=retries,
        archive_max_expansion=max_expansion,
    )
    out = result.to_dict()
    if json_out:
        print_json(out)
        return
    console.print(
        f"imported [bold]{escape(_shown(result.source))}[/] ({result.kind}) into "
        f"{escape(_shown(str(result.workspace)))} in {result.seconds:.1f}s",
        markup=True,
        highlight=False,
    )
    console.print(
        f"  added {result.added}, duplicates {result.duplicates}, unreadable {len(result.unreadable)}, "
        f"already present {result.already_present}, updated {result.updated}, skipped {len(result.skipped)}",
        highlight=False,
    )
    if result.splits:
        per_split = ", ".join(f"{k} {v}" for k, v in result.splits.items())
        origins = ", ".join(f"{k} {v}" for k, v in result.split_origins.items())
        console.print(f"  splits: {per_split} (origin: {origins})", highlight=False)
    if result.classes:
        console.print(f"  labels: {result.labeled} images in {len(result.classes)} classes", highlight=False)
    if out["skipped_by_reason"]:
        why = ", ".join(f"{k} {v}" for k, v in out["skipped_by_reason"].items())
        console.print(f"  skipped: {why}", highlight=False, soft_wrap=True)
    _print_issues("unreadable files (recorded, not used for training)", out["unreadable_files"])


def _classes_said(info: dict[str, Any]) -> str:
    """'3 classes', or '2 classes (also declared, with no image: wasps)' when some declared classes are empty."""
    empty = info.get("empty_classes") or []
    said = f"{len(info['classes']) - len(empty)} classes"
    return f"{said} (also declared, with no image: {', '.join(empty)})" if empty else said


@handle_errors
def status(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """What the workspace holds: images, classes, counts per split and class, and problem files."""
    info = api.status(workspace=workspace).to_dict()
    if json_out:
        print_json(info)
        return
    console.print(f"workspace [bold]{escape(_shown(info['workspace']))}[/]", markup=True, highlight=False)
    console.print(f"  catalog: {info['catalog']}", highlight=False, soft_wrap=True)
    console.print(
        f"  {info['images']} images: {info['readable']} readable, {len(info['unreadable'])} unreadable, "
        f"{info['exact_duplicates']} exact duplicates, {info['excluded']} excluded; "
        f"{info['labeled']} labelled, {info['unlabeled']} unlabelled, {_classes_said(info)}",
        highlight=False,
    )
    splits: dict[str, dict[str, int]] = info["splits"]
    if splits:
        names: list[str] = [s for s in ("train", "val", "test", "none") if s in splits]
        names += [s for s in splits if s not in names]
        table = Table(title="usable images (readable, not excluded)", title_justify="left")
        table.add_column("class")
        for name in names:
            table.add_column(name, justify="right")
        table.add_column("total", justify="right")
        classes = sorted({c for counts in splits.values() for c in counts})
        for c in classes:
            row = [splits[n].get(c, 0) for n in names]
            table.add_row(c, *map(str, row), str(sum(row)))
        totals = [sum(splits[n].values()) for n in names]
        table.add_row(Text("total", style="bold"), *map(str, totals), str(sum(totals)))
        console.print(table)
    if info["split_origins"]:
        origins = ", ".join(f"{k} {v}" for k, v in info["split_origins"].items())
        console.print(f"  split origin: {origins}", highlight=False)
    if info["sources"]:
        console.print("  sources: " + ", ".join(f"{k} {v}" for k, v in info["sources"].items()), highlight=False)
    if info["exclusions"]:
        excluded = ", ".join(f"{why} {n}" for why, n in info["exclusions"].items())
        actions = info.get("exclusion_actions") or {}
        undo = " or ".join(f"`picsift clean --undo {a}` ({n})" for a, n in actions.items()) or "`picsift clean --undo`"
        console.print(f"  excluded from training: {excluded}; {undo} restores them", highlight=False, soft_wrap=True)
    _print_issues("unreadable files", info["unreadable"])
    if info["missing"]:
        gone = [{"path": p, "reason": "no longer on disk (moved or deleted since import)"} for p in info["missing"]]
        _print_issues("missing files", gone)
