"""`picsift features`, `picsift compare`, `picsift cluster`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from picsift import api
from picsift.cli.common import (
    JsonOpt,
    LabelUrlOpt,
    StrictOpt,
    WorkspaceOpt,
    console,
    fmt_bytes,
    fmt_metric,
    handle_errors,
    print_json,
    warn_skipped,
)
from picsift.errors import ConfigError

FeaturesOpt = Annotated[
    str,
    typer.Option(
        "--features",
        "--extractor",
        "-f",
        help="auto (efficientnet_lite0 when its weights are installed, else hog) | hog | lbp | color-hist | "
        "cnn:MODEL | run:RUN | efficientnet_lite0[@SIZE] (ImageNet-pretrained).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the `features`, `compare` and `cluster` commands to `app`."""
    app.command("features")(features)
    app.command("compare")(compare)
    app.command("cluster")(cluster)


@handle_errors
def features(
    workspace: WorkspaceOpt = None,
    extractor: FeaturesOpt = "hog",
    out: Annotated[Path | None, typer.Option(help="Also write ids + features to this .npz file.")] = None,
    list_all: Annotated[bool, typer.Option("--list", help="List the extractors and exit.")] = False,
    strict: StrictOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Compute (or reuse) features of every usable image, cached by (extractor, image hash)."""
    if list_all:
        rows = api.list_extractors()
        if json_out:
            print_json({"extractors": [r.to_dict() for r in rows]})
        else:
            for r in rows:
                console.print(Text.assemble((r.name, "bold"), f"  {r.description}"), highlight=False)
        return
    result = api.extract_features(workspace=workspace, extractor=extractor, out=out, strict=strict)
    warn_skipped(result.skipped)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.extractor}: {result.images} images x {result.dim} features "
        f"({result.computed} computed, {result.cached} from cache) in {result.seconds:.1f}s",
        highlight=False,
    )
    console.print(f"cache: {result.cache_file}", highlight=False)


@handle_errors
def compare(
    workspace: WorkspaceOpt = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated candidates: CNN names, or MODEL:FEATURES for classical models.")
    ] = "fastcnn,svm:hog,logistic:hog,knn:hog,random-forest:hog,svm:cnn:fastcnn",
    time_budget: Annotated[
        float | None, typer.Option("--time-budget", help="Minutes for all candidates together.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs for CNN candidates (default: their recipe).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same split for every candidate.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Train every candidate on the same split and rank them: accuracy, macro F1, train/predict time, size."""
    from rich.table import Table

    board = api.compare_models(
        workspace=workspace, models=models, time_budget_min=time_budget, epochs=epochs, seed=seed, device=device
    )
    if json_out:
        print_json({**board.meta, "leaderboard": board.rows, "json": str(board.json_path),
                    "html": str(board.html_path)})  # fmt: skip
        return
    table = Table("#", "candidate", "accuracy", "95% CI", "macro F1", "train s", "predict ms/img", "size",
                  title=f"leaderboard on {board.n_eval} {board.split} images")  # fmt: skip
    for i, r in enumerate(board.rows, 1):
        if "error" in r:
            table.add_row(str(i), r["candidate"], Text(f"failed: {r['error']}", style="red"), "", "", "", "", "")
            continue
        lo, hi = r["accuracy_ci95"]
        table.add_row(
            str(i), r["candidate"], fmt_metric(r["accuracy"]), f"{lo:.3f}-{hi:.3f}", fmt_metric(r["macro_f1"]),
            f"{r['train_seconds']:.1f}", f"{r['predict_ms_per_image']:.2f}", fmt_bytes(r["model_bytes"]),
        )  # fmt: skip
    console.print(table)
    base = board.meta.get("majority_baseline")
    if base:
        console.print(f"majority-class baseline: {base['accuracy']:.4f} (always {base['class']})", highlight=False)
    console.print(board.meta["verdict"], highlight=False)
    console.print(f"leaderboard: {board.html_path}", highlight=False)


@handle_errors(interrupted="the clusters.json and report of the last finished clustering are kept")
def cluster(
    workspace: WorkspaceOpt = None,
    k: Annotated[int | None, typer.Option("--k", help="Number of clusters (default: chosen by silhouette).")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Choose k by silhouette (the default without --k).")] = False,
    features_name: FeaturesOpt = "auto",
    method: Annotated[str, typer.Option(help="kmeans | agglomerative | hdbscan.")] = "kmeans",
    max_k: Annotated[int, typer.Option("--max-k", help="Largest k tried by --auto.")] = 12,
    map_method: Annotated[str, typer.Option("--map", help="2-D map: auto | tsne | umap | pca.")] = "auto",
    labeled_only: Annotated[bool, typer.Option("--labeled-only", help="Cluster only labelled images.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    label_url: LabelUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Group the images without labels; writes clusters.json (ids per cluster) and clusters.html (a map)."""
    if auto and k is not None:
        raise ConfigError("give either --k K or --auto, not both")
    result = api.cluster(
        workspace=workspace, features=features_name, k=k, method=method, max_k=max_k, map_method=map_method,
        labeled_only=labeled_only, seed=seed, label_url=label_url,
    )  # fmt: skip
    s = result.summary
    warn_skipped(s["skipped_images"])
    if json_out:
        print_json({**s, "json": str(result.json_path), "html": str(result.html_path)})
        return
    sil = "n/a" if s["silhouette"] is None else f"{s['silhouette']:.3f}"
    console.print(
        f"{s['n_images']} images -> {s['k']} clusters ({s['method']} on {s['features']}, k by {s['k_chosen_by']}, "
        f"silhouette {sil})",
        highlight=False,
    )
    console.print(s["embedding"], highlight=False)
    for c in s["clusters"]:
        top = ", ".join(f"{k_} {v}" for k_, v in list(c["labels"].items())[:3]) or "unlabelled"
        name = "noise" if c["cluster"] < 0 else f"cluster {c['cluster']}"
        console.print(f"  {name}: {c['size']} images ({top})", highlight=False)
    if s["metrics"]:
        m = s["metrics"]
        console.print(f"vs labels: purity {m['purity']:.3f}, NMI {m['nmi']:.3f}, ARI {m['ari']:.3f}", highlight=False)
    console.print(f"map: {result.html_path}\ngroups: {result.json_path}", highlight=False)
