"""3 LABEL: the labelling app, label proposals, label files in and out, and clusters of unlabelled images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picsift.api._common import WorkspaceArg

if TYPE_CHECKING:
    from picsift.cluster.pipeline import ClusterResult
    from picsift.label.autolabel import AutolabelResult
    from picsift.label.labels_io import ImportReport
    from picsift.label_app import LabelSettings


@dataclass(frozen=True)
class LabelServer:
    """The labelling app, ready to serve: `url` (with the token, if any) is what a browser opens."""

    settings: LabelSettings
    host: str
    port: int
    url: str

    @property
    def root(self) -> Path:
        """The workspace folder the app serves."""
        return self.settings.workspace

    @property
    def token(self) -> str | None:
        """The access token every request must carry, or None when none is required."""
        return self.settings.token

    def serve(self) -> None:
        """Serve until interrupted (uvicorn, this thread)."""
        import uvicorn

        from picsift.label_app import create_app

        uvicorn.run(create_app(self.settings), host=self.host, port=self.port, log_level="warning")


def label_server(
    *,
    workspace: WorkspaceArg = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    annotator: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> LabelServer:
    """The labelling app for a workspace (`picsift label`); call `.serve()` to run it.

    Beyond the loopback interface an access token is required: one is generated when `token` is None. The app
    answers only requests addressed to loopback names, the bind address and `allowed_hosts` (DNS rebinding).
    Raises ConfigError for a port outside 1-65535, WorkspaceError when there is no workspace at that path.
    """
    from picsift.config import check_port
    from picsift.label_app import LabelSettings
    from picsift.label_app.settings import needs_token, new_token
    from picsift.store import Workspace

    check_port(port)
    ws = Workspace.open(workspace)
    if token is None and needs_token(host):
        token = new_token()
    settings = LabelSettings(
        workspace=ws.root, token=token, annotator=annotator or "", host=host, allowed_hosts=tuple(allowed_hosts)
    )
    ws.close()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    return LabelServer(settings=settings, host=host, port=port, url=url)


def autolabel(
    *,
    workspace: WorkspaceArg = None,
    method: str = "model",
    threshold: float = 0.9,
    run: str | Path | None = None,
    clusters: int | None = None,
    algorithm: str = "kmeans",
    features: str | None = None,
    strict: bool = False,
) -> AutolabelResult:
    """Propose labels for unlabelled images from a run (method "model", confidence >= threshold; never
    overwrites a label), or group them into clusters to label (method "cluster", `features` default: the
    pretrained embedding when its weights are installed, else the latest run's, else hog). Raises ConfigError (unknown method or algorithm, a threshold outside
    [0, 1], clusters below 2), RunNotFoundError,
    WorkspaceError, MissingImagesError with `strict`."""
    from picsift.config import check_number, check_optional
    from picsift.label.autolabel import autolabel as run_autolabel
    from picsift.store import Workspace

    check_number(threshold, "--threshold (a probability)", low=0, high=1)
    check_optional(clusters, "--clusters", low=2, whole=True)
    return run_autolabel(
        Workspace.open(workspace),
        method,
        threshold=threshold,
        run=run,
        n_clusters=clusters,
        algorithm=algorithm,
        extractor=features,
        strict=strict,
    )


def import_labels(
    file: str | Path,
    *,
    workspace: WorkspaceArg = None,
    overwrite: bool = False,
    as_proposals: bool = False,
    annotator: str = "import",
    field: str | None = None,
) -> ImportReport:
    """Apply labels from a CSV, picsift JSON, COCO or Label Studio file to the catalog's images (matched by
    path, hash, then file name). `field` names the class field when the file has several. Raises DatasetError
    (unreadable file, no label in it: file and line), WorkspaceError."""
    from picsift.label.labels_io import import_labels as run_import
    from picsift.store import Workspace

    return run_import(
        Workspace.open(workspace),
        Path(file),
        overwrite=overwrite,
        as_proposals=as_proposals,
        annotator=annotator,
        label_field=field,
    )


@dataclass(frozen=True)
class LabelExport:
    """`labeled` labelled images written to `file` in `format`."""

    file: Path
    format: str
    labeled: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (the file's path as a string)."""
        return {"file": str(self.file), "format": self.format, "labeled": self.labeled}


def export_labels(file: str | Path, *, workspace: WorkspaceArg = None, format: str = "csv") -> LabelExport:
    """Write the catalog's labels to a file: csv | json | labelstudio | coco.

    Raises DatasetError (unknown format), WorkspaceError.
    """
    from picsift.label.labels_io import export_labels as run_export
    from picsift.store import Workspace

    n = run_export(Workspace.open(workspace), Path(file), format)
    return LabelExport(file=Path(file), format=format, labeled=n)


MAP_METHODS = ("auto", "tsne", "umap", "pca")


def cluster(
    *,
    workspace: WorkspaceArg = None,
    features: str = "hog",
    k: int | None = None,
    method: str = "kmeans",
    max_k: int = 12,
    map_method: str = "auto",
    labeled_only: bool = False,
    seed: int = 0,
    label_url: str | None = None,
) -> ClusterResult:
    """Group the usable images without labels (`picsift cluster`); k None: chosen by silhouette up to `max_k`.

    Writes clusters.json (ids per cluster) and clusters.html (a 2-D map by `map_method`; each image links to the
    labelling app at `label_url`, default http://127.0.0.1:8765/). Raises ConfigError (unknown map method,
    features or clustering method; k below 2 or larger than the images; max_k outside 2-1000; a label_url that is not an http(s) URL),
    WorkspaceError.
    """
    from picsift.cluster import run as run_cluster
    from picsift.config import check_number, check_optional, check_seed
    from picsift.errors import ConfigError

    check_optional(k, "--k", low=2, whole=True)
    check_number(max_k, "--max-k", low=2, high=1000, whole=True)
    check_seed(seed)
    if map_method not in MAP_METHODS:
        raise ConfigError(f"--map must be auto, tsne, umap or pca; got {map_method!r}")
    return run_cluster(
        workspace,
        features=features,
        k=k,
        method=method,
        max_k=max_k,
        map_method=map_method,
        labeled_only=labeled_only,
        seed=seed,
        label_url=label_url,
    )
