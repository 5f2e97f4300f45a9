"""`picsift export`, `picsift serve`, `picsift feedback list|export|accept|reject`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

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


def _run_dir(workspace: Path | None, run: str | None) -> Path:
    from picsift.store import Workspace
    from picsift.train.runs import resolve_run

    ws = None
    if run is None or not Path(run).is_dir():
        ws = Workspace.open(workspace)
    return resolve_run(ws, run)


def _warn_parity(meta: dict[str, Any]) -> None:
    """The parity check's caveats, on stderr: sample images skipped, and a model whose outputs barely vary."""
    from picsift.data.available import SkippedImage

    parity = meta.get("parity") or {}
    warn_skipped([SkippedImage(**d) for d in parity.get("skipped_images", [])])
    if parity.get("warning"):
        warn(str(parity["warning"]))


@handle_errors
def export(
    workspace: WorkspaceOpt = None,
    run: RunOpt = None,
    format: Annotated[str, typer.Option("--format", help="onnx (classical runs: artifact bundle).")] = "onnx",
    quantize: Annotated[str | None, typer.Option(help="int8: dynamic quantisation, accuracy change reported.")] = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder (default <workspace>/exports/<run id>).")] = None,
    samples: Annotated[int, typer.Option(help="Test/val images for the parity check.")] = 64,
    version: Annotated[str | None, typer.Option(help="Version string (default <run id>-<hash>).")] = None,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export a run to a bundle: ONNX model + preprocessing + classes + metadata, parity-checked."""
    from picsift.deploy.export import export as export_run
    from picsift.errors import ConfigError

    if format != "onnx":
        raise ConfigError(f"--format must be onnx, got {format!r}")
    bundle = export_run(
        _run_dir(workspace, run), out, quantize=quantize, samples=samples, version=version, strict=strict
    )
    from picsift.deploy.bundle import read_bundle_meta

    meta = read_bundle_meta(bundle)
    _warn_parity(meta)
    out_obj = {
        "bundle": str(bundle),
        "version": meta["version"],
        "format": meta["format"],
        "model_file": meta.get("model_file"),
        "parity": meta.get("parity"),
        "quantization": meta.get("quantization"),
    }
    if json_out:
        print_json(out_obj)
        return
    p = meta.get("parity") or {}
    console.print(
        f"exported [bold]{escape(meta['model'])}[/] to {escape(str(bundle))} (version {meta['version']})", markup=True
    )
    if "max_abs_prob_diff" in p:
        console.print(
            f"parity vs PyTorch on {p['samples']}: max prob diff {p['max_abs_prob_diff']:.2e}, "
            f"top-1 agreement {p['top1_agreement']:.3f}"
        )
    q = meta.get("quantization")
    if q:
        change = q.get("accuracy_change")
        acc = f", accuracy change {change:+.4f}" if change is not None else ""
        console.print(
            f"int8: top-1 agreement {q['top1_agreement']:.3f}, max prob diff "
            f"{q['max_abs_prob_diff']:.3f}{acc}, {q['size_fp32_bytes']} -> {q['size_int8_bytes']} bytes"
        )


@handle_errors
def serve(
    bundle: Annotated[Path | None, typer.Argument(help="Bundle folder (from `picsift export`).")] = None,
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
    import logging

    from picsift.deploy.server.run import serve as run_server
    from picsift.deploy.server.settings import ServerSettings
    from picsift.errors import ConfigError

    if bundle is None:
        if run is None and workspace is None:
            raise ConfigError("give a BUNDLE folder, or --run RUN / --workspace W to export the latest run first")
        from picsift.deploy.export import export as export_run

        bundle = export_run(_run_dir(workspace, run))
        from picsift.deploy.bundle import read_bundle_meta

        _warn_parity(read_bundle_meta(bundle))
    logging.getLogger("picsift").setLevel(log_level.upper())
    settings = ServerSettings(
        bundle=bundle,
        workspace=workspace,
        runtime=runtime,
        device=device,
        threads=threads,
        api_key=api_key,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_request_bytes=max_request_bytes,
        max_pixels=max_pixels,
        host=host,
        allowed_hosts=tuple(allowed_host or ()),
        prediction_log_max_bytes=prediction_log_max_bytes,
        prediction_log_files=prediction_log_files,
    ).validate()
    from picsift.deploy.bundle import read_bundle_meta

    meta = read_bundle_meta(bundle)
    console.print(
        f"serving {meta['model']} version {meta['version']} on http://{host}:{port} "
        f"(docs at /docs{', API key required' if settings.with_env_key().api_key else ''})",
        highlight=False,
    )
    run_server(settings, host=host, port=port, workers=workers, log_level=log_level)


def _store(workspace: Path | None):  # type: ignore[no-untyped-def]
    from picsift.deploy.feedback import FeedbackStore
    from picsift.store import Workspace

    return FeedbackStore(Workspace.open(workspace))


@handle_errors
def feedback_list(
    workspace: WorkspaceOpt = None,
    status: Annotated[str | None, typer.Option(help="pending | accepted | rejected (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List feedback sent to the server."""
    items = _store(workspace).items(status)
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
    result = _store(workspace).export(out, None if status == "all" else status)
    if json_out:
        print_json(result)
    else:
        console.print(f"wrote {result['rows']} rows and {result['images']} images to {result['out']}")


@handle_errors
def feedback_accept(
    ids: Annotated[list[int], typer.Argument(help="Feedback ids.")],
    workspace: WorkspaceOpt = None,
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")] = "picsift",
    json_out: JsonOpt = False,
) -> None:
    """Accept feedback: its image joins the catalog, labelled, for `picsift train --with-feedback`."""
    items = _store(workspace).accept(ids, reviewer)
    if json_out:
        print_json({"accepted": [it.to_dict() for it in items]})
    else:
        for it in items:
            console.print(f"accepted feedback {it.id}: image {it.image_id} labelled {it.label!r}")


@handle_errors
def feedback_reject(
    ids: Annotated[list[int], typer.Argument(help="Feedback ids.")],
    workspace: WorkspaceOpt = None,
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")] = "picsift",
    json_out: JsonOpt = False,
) -> None:
    """Reject feedback: kept for the record, never used for training."""
    items = _store(workspace).reject(ids, reviewer)
    if json_out:
        print_json({"rejected": [it.to_dict() for it in items]})
    else:
        for it in items:
            console.print(f"rejected feedback {it.id}")
