"""`picsift label`, `picsift autolabel`, `picsift import-labels`, `picsift export-labels`."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from picsift import api
from picsift.cli.common import (
    JsonOpt,
    RunOpt,
    StrictOpt,
    WorkspaceOpt,
    console,
    handle_errors,
    print_json,
    warn,
    warn_skipped,
)


def register(app: typer.Typer) -> None:
    """Add the `label`, `autolabel`, `import-labels` and `export-labels` commands to `app`."""
    app.command("label")(label)
    app.command("autolabel")(autolabel)
    app.command("import-labels")(import_labels)
    app.command("export-labels")(export_labels)


@handle_errors(interrupted="the labelling app stopped; every label it saved is kept")
def label(
    workspace: WorkspaceOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind; beyond localhost a token is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser tab.")] = False,
    token: Annotated[
        str | None, typer.Option(help="Access token (generated and printed when --host is not localhost).")
    ] = None,
    annotator: Annotated[str | None, typer.Option(help="Name recorded with label changes.")] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A host name the app may be reached by besides localhost/127.0.0.1/[::1] (repeatable; '*' for "
            "any). Requests naming another host get 421 (a guard against DNS rebinding).",
        ),
    ] = None,
) -> None:
    """Serve the labelling app for the workspace and open it in the browser."""
    server = api.label_server(
        workspace=workspace,
        host=host,
        port=port,
        token=token,
        annotator=annotator,
        allowed_hosts=tuple(allowed_host or ()),
    )
    console.print(
        f"labelling {escape(str(server.root))} at [bold]{escape(server.url)}[/]  (Ctrl+C to stop)",
        markup=True,
        highlight=False,
        soft_wrap=True,
    )
    if server.token:
        console.print(f"access token: {server.token}", highlight=False)
    if not no_browser:
        threading.Timer(1.0, webbrowser.open, args=(server.url,)).start()
    server.serve()


@handle_errors
def autolabel(
    workspace: WorkspaceOpt = None,
    threshold: Annotated[float, typer.Option(help="Minimum confidence for a proposal (method model).")] = 0.9,
    method: Annotated[str, typer.Option(help="model (proposals from a run) | cluster (groups to label).")] = "model",
    run: RunOpt = None,
    clusters: Annotated[int | None, typer.Option(help="Number of clusters (method cluster).")] = None,
    algorithm: Annotated[str, typer.Option(help="kmeans | agglomerative (method cluster).")] = "kmeans",
    features: Annotated[
        str | None, typer.Option(help="Feature extractor for clustering (default: latest run, else hog).")
    ] = None,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Propose labels for unlabelled images (never overwrites labels) or group them into clusters."""
    result = api.autolabel(
        workspace=workspace,
        method=method,
        threshold=threshold,
        run=run,
        clusters=clusters,
        algorithm=algorithm,
        features=features,
        strict=strict,
    )
    warn_skipped(result.skipped)
    out = result.to_dict()
    if json_out:
        print_json(out)
    elif method == "model":
        console.print(
            f"{result.proposed} proposals (confidence >= {threshold}) for {result.considered} unlabelled images "
            f"from run {result.run}; review them in `picsift label` (view: proposed)",
            highlight=False,
        )
        for name, n in sorted(result.per_class.items()):
            console.print(f"  {name}: {n}", highlight=False)
    else:
        console.print(
            f"{result.clusters} clusters of {result.considered} unlabelled images (embeddings: {result.embeddings}); "
            "label them in `picsift label` (Clusters)",
            highlight=False,
        )
        console.print(result.embedding_text or "", highlight=False)


@handle_errors
def import_labels(
    file: Annotated[
        Path,
        typer.Argument(help="CSV, picsift JSON, COCO, or a Label Studio JSON, JSON-MIN or CSV export."),
    ],
    workspace: WorkspaceOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing different labels.")] = False,
    as_proposals: Annotated[bool, typer.Option("--as-proposals", help="Record as proposals to review.")] = False,
    annotator: Annotated[
        str, typer.Option(help="Name recorded with the changes when the file names no annotator.")
    ] = "import",
    field: Annotated[
        str | None,
        typer.Option(
            help="The field holding the class (Label Studio choices name, CSV column) when there are several."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Apply labels from a file to the catalog's images (matched by path, hash, then file name)."""
    report = api.import_labels(
        file, workspace=workspace, overwrite=overwrite, as_proposals=as_proposals, annotator=annotator, field=field
    )
    for c in report.new_classes:
        similar = f"; did you mean {', '.join(repr(x) for x in c['similar'])}?" if c["similar"] else ""
        if similar:  # a spelling of a known class, most likely: relabel them (picsift label) if so
            warn(f"new class {c['class']!r} for {c['images']} image(s){similar}")
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"read {report.read} labels ({report.format}): {report.applied} applied, {report.unchanged} unchanged, "
        f"{report.proposed} proposed, {len(report.conflicts)} conflicts, {len(report.unmatched)} unmatched, "
        f"{len(report.disagreements)} disagreements, {len(report.multiple)} with several labels",
        highlight=False,
    )
    for c in report.conflicts[:10]:
        console.print(
            f"  conflict: {c['path']} is {c['current']!r}, file says {c['file']!r} (use --overwrite or --as-proposals)",
            highlight=False,
        )
    for d in report.disagreements[:10]:
        given = "; ".join(f"{who}: {label}" for who, label in d["labels"].items())
        console.print(f"  disagreement, not applied: {d['path']} ({given})", highlight=False)
    for m in report.multiple[:10]:
        console.print(
            f"  several labels, not applied (an image holds one): {m['path']} ({', '.join(m['labels'])})",
            highlight=False,
        )
    if report.unmatched:
        first = ", the first 10" if len(report.unmatched) > 10 else ""
        n = len(report.unmatched)
        console.print(f"  {n} {'label names' if n == 1 else 'labels name'} no catalog image{first}:", highlight=False)
    for u in report.unmatched[:10]:
        console.print(f"  no catalog image for {u}", highlight=False)


@handle_errors
def export_labels(
    file: Annotated[Path, typer.Argument(help="Output file.")],
    workspace: WorkspaceOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | json | labelstudio | coco.")] = "csv",
    json_out: JsonOpt = False,
) -> None:
    """Write the catalog's labels to a file."""
    result = api.export_labels(file, workspace=workspace, format=fmt)
    if json_out:
        print_json(result.to_dict())
    else:
        console.print(f"wrote {result.labeled} labels to {result.file} ({result.format})", highlight=False)
