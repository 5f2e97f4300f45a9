"""7 DEPLOY: export a run to a bundle, serve a bundle over HTTP, review the feedback the server collected."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg, run_dir, workspace_path

if TYPE_CHECKING:
    from picsift.deploy.server.settings import ServerSettings
    from picsift.store.feedback_store import FeedbackItem


@dataclass(frozen=True)
class ExportResult:
    """A bundle folder (ONNX model + preprocessing + classes + metadata): `version`, `format`, the exported
    `model`'s name, `model_file`, the `parity` check against PyTorch {samples, max_abs_prob_diff,
    top1_agreement, skipped_images, warning, ...} and the int8 `quantization` report when asked for."""

    bundle: Path | str  # a URL when exported to object storage
    version: str
    format: str
    model: str
    model_file: str | None
    parity: dict[str, Any] | None
    quantization: dict[str, Any] | None

    @property
    def parity_skipped(self) -> list[dict[str, Any]]:
        """Sample images the parity check skipped (missing on disk or no longer decoding), as dicts."""
        return list((self.parity or {}).get("skipped_images", []))

    @property
    def parity_warning(self) -> str | None:
        """Set when the model's outputs barely vary across the samples, so parity says little."""
        warning = (self.parity or {}).get("warning")
        return str(warning) if warning else None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (the bundle's path as a string)."""
        return {
            "bundle": str(self.bundle),
            "version": self.version,
            "format": self.format,
            "model_file": self.model_file,
            "parity": self.parity,
            "quantization": self.quantization,
        }


def _export_result(bundle: Path) -> ExportResult:
    from picsift.deploy.bundle import read_bundle_meta

    meta = read_bundle_meta(bundle)
    return ExportResult(
        bundle=bundle,
        version=meta["version"],
        format=meta["format"],
        model=meta["model"],
        model_file=meta.get("model_file"),
        parity=meta.get("parity"),
        quantization=meta.get("quantization"),
    )


def export_bundle(
    *,
    workspace: WorkspaceArg = None,
    run: str | Path | None = None,
    format: str = "onnx",
    quantize: str | None = None,
    out: str | Path | None = None,
    samples: int = 64,
    version: str | None = None,
    strict: bool = False,
) -> ExportResult:
    """Export a run (default: the latest) to a bundle, default `<workspace>/exports/<run id>` (`picsift export`);
    `samples` test/val images check ONNX Runtime against PyTorch; quantize "int8" adds a dynamically quantised
    model and reports the accuracy change. Classical runs export an artifact bundle. `out` may be a URL
    (`s3://bucket/bundles/cats`): the bundle is made locally, then uploaded with its manifest written last.

    Raises ConfigError (format other than onnx, unknown quantisation, `samples` outside 1-MAX_SAMPLES), ExportError (the runtimes disagree),
    RunNotFoundError, WorkspaceError, MissingImagesError with `strict`, StorageError (a URL `out` cannot be written).
    """
    from picsift.config import check_number
    from picsift.deploy.export import MAX_SAMPLES, export
    from picsift.errors import ConfigError

    check_number(samples, "--samples", low=1, high=MAX_SAMPLES, whole=True)
    if format != "onnx":
        raise ConfigError(f"--format must be onnx, got {format!r}")
    from picsift.data.storage import is_remote

    if isinstance(out, str) and is_remote(out):
        return _export_to_url(run_dir(workspace, run), out, quantize=quantize, samples=samples, version=version,
                              strict=strict)  # fmt: skip
    bundle = export(run_dir(workspace, run), out, quantize=quantize, samples=samples, version=version, strict=strict)
    return _export_result(bundle)


def _export_to_url(run_folder: Path, url: str, **options: Any) -> ExportResult:
    """Export into a temporary folder, then upload it to `url` with its manifest last (`publish_folder`), so a
    reader (`picsift predict --bundle URL`) finds the old bundle, none or the new one, never half of one."""
    import tempfile

    from picsift.data.storage import is_empty, publish_folder
    from picsift.deploy.export import export

    is_empty(url)  # a missing bucket, no credentials or an unreachable endpoint fail now, not after the export
    with tempfile.TemporaryDirectory(prefix="picsift-export-") as tmp:
        bundle = export(run_folder, Path(tmp) / "bundle", **options)
        result = _export_result(bundle)
        publish_folder(bundle, url)
    return replace(result, bundle=url)


@dataclass(frozen=True)
class ModelServer:
    """A bundle ready to serve: `model` and `version` from its metadata; `exported` when the run was exported
    first (its parity caveats); `key_required` when requests need the API key (given or $PICSIFT_API_KEY)."""

    settings: ServerSettings
    model: str
    version: str
    host: str
    port: int
    workers: int
    log_level: str
    key_required: bool
    exported: ExportResult | None = None

    @property
    def url(self) -> str:
        """The server's base URL, `http://HOST:PORT`."""
        return f"http://{self.host}:{self.port}"

    def serve(self) -> None:
        """Serve until interrupted (uvicorn; `workers` processes, each loading the model)."""
        import logging

        from picsift.deploy.server.run import serve

        logging.getLogger("picsift").setLevel(self.log_level.upper())
        serve(self.settings, host=self.host, port=self.port, workers=self.workers, log_level=self.log_level)


def model_server(
    bundle: str | Path | None = None,
    *,
    workspace: WorkspaceArg = None,
    run: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    runtime: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    api_key: str | None = None,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    max_request_bytes: int = 10 * 1024 * 1024,
    max_pixels: int = 40_000_000,
    log_level: str = "warning",
    allowed_hosts: tuple[str, ...] = (),
    prediction_log_max_bytes: int = 16 * 1024 * 1024,
    prediction_log_files: int = 10,
) -> ModelServer:
    """The HTTP server of a bundle (`picsift serve`), ONNX Runtime on CPU by default; call `.serve()` to run it.
    `bundle` is a bundle folder or the URL it was exported to (downloaded once, `picsift.deploy.bundle.fetch_bundle`).
    Without a bundle, the run (`run`, or the latest of `workspace`) is exported first. Without an API key it
    answers only requests addressed to loopback names, the bind address and `allowed_hosts` (DNS rebinding). The
    prediction log rotates beyond `prediction_log_max_bytes`, keeping `prediction_log_files` files.

    Raises ConfigError (neither a bundle nor a run or workspace; a port outside 1-65535 or another setting out
    of range: checked before anything is exported or fetched), StorageError (no complete
    bundle at a URL), and what `export_bundle` raises when exporting.
    """
    from picsift.config import check_port
    from picsift.data.storage import is_remote
    from picsift.deploy.bundle import fetch_bundle, read_bundle_meta
    from picsift.deploy.server.settings import ServerSettings
    from picsift.errors import ConfigError

    check_port(port)
    settings = ServerSettings(
        bundle=Path(str(bundle or "")),  # set below, once fetched or exported
        workspace=workspace_path(workspace),
        runtime=runtime,
        device=device,
        threads=threads,
        api_key=api_key,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_request_bytes=max_request_bytes,
        max_pixels=max_pixels,
        host=host,
        allowed_hosts=tuple(allowed_hosts),
        prediction_log_max_bytes=prediction_log_max_bytes,
        prediction_log_files=prediction_log_files,
        workers=workers,
    ).validate()  # before anything is fetched or exported
    exported = None
    if isinstance(bundle, str) and is_remote(bundle):  # the URL `picsift export --out URL` uploaded to
        bundle = fetch_bundle(bundle)
    if bundle is None:
        if run is None and workspace is None:
            raise ConfigError("give a BUNDLE folder, or --run RUN / --workspace W to export the latest run first")
        from picsift.deploy.export import export

        exported = _export_result(export(run_dir(workspace, run)))
        bundle = exported.bundle
    settings = replace(settings, bundle=Path(bundle))
    meta = read_bundle_meta(Path(bundle))
    return ModelServer(
        settings=settings,
        model=meta["model"],
        version=meta["version"],
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        key_required=bool(settings.with_env_key().api_key),
        exported=exported,
    )


def _feedback(workspace: WorkspaceArg):
    from picsift.store import Workspace
    from picsift.store.feedback_store import FeedbackStore

    return FeedbackStore(Workspace.open(workspace))


def feedback_list(*, workspace: WorkspaceArg = None, status: str | None = None) -> list[FeedbackItem]:
    """Feedback sent to the server, oldest first; `status` pending | accepted | rejected (None: all).

    Raises ConfigError (unknown status), WorkspaceError.
    """
    return _feedback(workspace).items(status)


@dataclass(frozen=True)
class FeedbackExport:
    """`rows` feedback rows written to `out`/feedback.csv, `images` image copies in `out`/<label>/."""

    out: str
    rows: int
    images: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {"out": self.out, "rows": self.rows, "images": self.images}


def feedback_export(
    out: str | Path, *, workspace: WorkspaceArg = None, status: str | None = "accepted"
) -> FeedbackExport:
    """Copy feedback images into a folder per label, with a CSV of all fields; `status` None: all feedback.

    Raises ConfigError (unknown status), WorkspaceError.
    """
    return FeedbackExport(**_feedback(workspace).export(Path(out), status))


def feedback_accept(ids: list[int], *, workspace: WorkspaceArg = None, reviewer: str = "picsift") -> list[FeedbackItem]:
    """Accept pending feedback: its image joins the catalog, labelled, for `train_model(with_feedback=True)`.

    Raises NotFoundError (unknown id), ConfigError (feedback not pending, or carrying no image), WorkspaceError.
    """
    return _feedback(workspace).accept(ids, reviewer)


def feedback_reject(ids: list[int], *, workspace: WorkspaceArg = None, reviewer: str = "picsift") -> list[FeedbackItem]:
    """Reject pending feedback: kept for the record, never used for training.

    Raises NotFoundError (unknown id), ConfigError (feedback not pending), WorkspaceError.
    """
    return _feedback(workspace).reject(ids, reviewer)
