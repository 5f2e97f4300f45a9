"""`picsift export`, `picsift serve`, `picsift feedback list|export|accept|reject`."""

from __future__ import annotations

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
    """Add `export`, `serve` and the `feedback` group (list, export, accept, reject) to `app`."""
    app.command("export")(export)
    app.command("serve")(serve)
    fb = typer.Typer(
        help="Corrections collected by the server: review them and feed them to training.", no_args_is_help=True
    )
    fb.command("list")(feedback_list)
    fb.command("export")(feedback_export)
    fb.command("accept")(feedback_accept)
    fb.command("reject")(feedback_reject)
    app.add_typer(fb, name="feedback")


def _warn_parity(exported: api.ExportResult) -> None:
    """The parity check's caveats, on stderr: sample images skipped, and a model whose outputs barely vary."""
    warn_skipped(exported.parity_skipped)
    if exported.parity_warning:
        warn(exported.parity_warning)


@handle_errors(interrupted="no bundle was written (a bundle appears only once complete)")
def export(
    workspace: WorkspaceOpt = None,
    run: RunOpt = None,
    format: Annotated[str, typer.Option("--format", help="onnx (classical runs: artifact bundle).")] = "onnx",
    quantize: Annotated[str | None, typer.Option(help="int8: dynamic quantisation, accuracy change reported.")] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="Bundle folder (default <workspace>/exports/<run id>), or a URL such as s3://bucket/bundles/x."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Test/val images for the parity check.")] = 64,
    version: Annotated[str | None, typer.Option(help="Version string (default <run id>-<hash>).")] = None,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a run to a bundle: ONNX model + preprocessing + classes + metadata, parity-checked."""
    result = api.export_bundle(
        workspace=workspace,
        run=run,
        format=format,
        quantize=quantize,
        out=out,
        samples=samples,
        version=version,
        strict=strict,
    )
    _warn_parity(result)
    if json_out:
        print_json(result.to_dict())
        return
    p = result.parity or {}
    console.print(
        f"exported [bold]{escape(result.model)}[/] to {escape(str(result.bundle))} (version {result.version})",
        markup=True,
    )
    if "max_abs_prob_diff" in p:
        console.print(
            f"parity vs PyTorch on {p['samples']}: max prob diff {p['max_abs_prob_diff']:.2e}, "
            f"top-1 agreement {p['top1_agreement']:.3f}"
        )
    q = result.quantization
    if q:
        change = q.get("accuracy_change")
        acc = f", accuracy change {change:+.4f}" if change is not None else ""
        console.print(
            f"int8: top-1 agreement {q['top1_agreement']:.3f}, max prob diff "
            f"{q['max_abs_prob_diff']:.3f}{acc}, {q['size_fp32_bytes']} -> {q['size_int8_bytes']} bytes"
        )


@handle_errors(interrupted="the server stopped")
def serve(
    bundle: Annotated[
        str | None,
        typer.Argument(help="Bundle folder (from `picsift export`), or the URL it was exported to (s3://...)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    run: RunOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads the model).")] = 1,
    runtime: Annotated[str, typer.Option(help="auto | onnx | torch.")] = "auto",
    device: Annotated[str, typer.Option(help="Device for --runtime torch (cpu, cuda).")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="Inference threads.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Require this key (or set $PICSIFT_API_KEY).", envvar="PICSIFT_API_KEY"),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="Micro-batching: most images per model call.")] = 32,
    max_wait_ms: Annotated[float, typer.Option(help="Micro-batching: longest wait for a batch to fill.")] = 5.0,
    max_request_bytes: Annotated[int, typer.Option(help="Request body cap.")] = 10 * 1024 * 1024,
    max_pixels: Annotated[int, typer.Option(help="Pixel cap per image.")] = 40_000_000,
    log_level: Annotated[str, typer.Option(help="uvicorn/picsift log level.")] = "warning",
    prediction_log_max_bytes: Annotated[
        int, typer.Option(help="Rotate a file of the prediction log (<workspace>/predictions/) beyond this size.")
    ] = 16 * 1024 * 1024,
    prediction_log_files: Annotated[int, typer.Option(help="Prediction log files kept (the oldest go).")] = 10,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A host name clients reach the server by besides localhost/127.0.0.1/[::1] (repeatable; '*' for "
            "any). Without an API key other hosts get 421 (a guard against DNS rebinding).",
        ),
    ] = None,
) -> None:
    """Serve a bundle over HTTP (ONNX Runtime on CPU by default). With --run, export it first."""
    server = api.model_server(
        bundle,
        workspace=workspace,
        run=run,
        host=host,
        port=port,
        workers=workers,
        runtime=runtime,
        device=device,
        threads=threads,
        api_key=api_key,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_request_bytes=max_request_bytes,
        max_pixels=max_pixels,
        log_level=log_level,
        allowed_hosts=tuple(allowed_host or ()),
        prediction_log_max_bytes=prediction_log_max_bytes,
        prediction_log_files=prediction_log_files,
    )
    if server.exported is not None:
        _warn_parity(server.exported)
    console.print(
        f"serving {server.model} version {server.version} on {server.url} "
        f"(docs at /docs{', API key required' if server.key_required else ''})",
        highlight=False,
    )
    server.serve()


@handle_errors
def feedback_list(
    workspace: WorkspaceOpt = None,
    status: Annotated[str | None, typer.Option(help="pending | accepted | rejected (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List feedback sent to the server."""
    items = api.feedback_list(workspace=workspace, status=status)
    if json_out:
        print_json({"feedback": [it.to_dict() for it in items]})
        return
    from rich.table import Table

    table = Table("id", "status", "label", "predicted", "conf", "model", "comment", "created")
    for it in items:
        conf = f"{it.confidence:.3f}" if it.confidence is not None else "-"
        table.add_row(
            str(it.id),
            it.status,
            it.label,
            it.predicted_label or "-",
            conf,
            it.model_version or "-",
            it.comment[:40],
            it.created_at,
        )
    console.print(table)


@handle_errors
def feedback_export(
    out: Annotated[Path, typer.Option(help="Folder for <label>/<image> copies and feedback.csv.")],
    workspace: WorkspaceOpt = None,
    status: Annotated[str | None, typer.Option(help="pending | accepted | rejected | all.")] = "accepted",
    json_out: JsonOpt = False,
) -> None:
    """Copy feedback images into a folder per label, with a CSV of all fields."""
    result = api.feedback_export(out, workspace=workspace, status=None if status == "all" else status)
    if json_out:
        print_json(result.to_dict())
    else:
        console.print(f"wrote {result.rows} rows and {result.images} images to {result.out}")


@handle_errors
def feedback_accept(
    ids: Annotated[list[int], typer.Argument(help="Feedback ids.")],
    workspace: WorkspaceOpt = None,
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")] = "picsift",
    json_out: JsonOpt = False,
) -> None:
    """Accept feedback: its image joins the catalog, labelled, for `picsift train --with-feedback`."""
    items = api.feedback_accept(ids, workspace=workspace, reviewer=reviewer)
    if json_out:
        print_json({"accepted": [it.to_dict() for it in items]})
    else:
        for it in items:
            console.print(f"accepted feedback {it.id}: image {it.image_id} labelled {it.label!r}", highlight=False)
            if it.new_class:
                warn(
                    f"{it.label!r} is a new class (no image had it before): the next training run gains it; "
                    f"if it is a typo, relabel image {it.image_id} (`picsift label`)"
                )


@handle_errors
def feedback_reject(
    ids: Annotated[list[int], typer.Argument(help="Feedback ids.")],
    workspace: WorkspaceOpt = None,
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")] = "picsift",
    json_out: JsonOpt = False,
) -> None:
    """Reject feedback: kept for the record, never used for training."""
    items = api.feedback_reject(ids, workspace=workspace, reviewer=reviewer)
    if json_out:
        print_json({"rejected": [it.to_dict() for it in items]})
    else:
        for it in items:
            console.print(f"rejected feedback {it.id}")
