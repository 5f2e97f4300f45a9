"""Classical models on image features vs the default CNN, and clustering quality.

    python bench/classical_bench.py [--quick] [--cnn-budget MIN] [--threads N]

Datasets (test split only, never tuned on):
- scikit-learn's handwritten digits (1,797 images, 8x8, written as 32x32 PNGs), stratified 75/25 split;
- a 5,000-image CIFAR-10 subset of the JPEG copy in ../shared/datasets/cifar10: 400 per class from its
  train folder for training (10% of it becomes validation) and 100 per class from its test folder.

For each: the default CNN (fastcnn, its own recipe under a fixed time budget), then all six classical
models on HOG features and on the trained CNN's penultimate-layer features (run:RUN) — the same split,
through `picsift.train.run` and the serving Predictor (prediction time includes feature extraction from
pixels). Then k-means on digits HOG (k=10 and k chosen by silhouette): NMI / ARI / purity.

Everything runs with the same thread count (default 1: the development machine has 2 shared cores, and
OpenMP spin-waiting under load makes multi-threaded timings meaningless there). One seed per
configuration: the CNN budget makes repeats too slow for this machine; the spread is therefore unknown.
Gradient boosting runs 30 rounds here (`--gb-rounds`; the model's default is 100): on 1,764 HOG
dimensions its cost grows with rounds x classes x features and dominated the whole benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchutil import machine_info as machine
from benchutil import results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10"
WORK = REPO / "bench" / "work" / "classical"
CLASSICAL = ["svm", "logistic", "knn", "random-forest", "gradient-boosting", "decision-tree"]
ANCHORS = [
    ("digits", "SVC on raw pixels (scikit-learn example, 50/50 split)", 0.97),
    ("Fashion-MNIST", "HOG + SVM (published)", 0.926),
    ("CIFAR-10", "ResNet-18 (full data, GPU, official binaries)", 0.95),
]


def add_images(ws: Any, items: list[tuple[Path, str, str]], source: Path) -> None:
    from picsift.store.schema import Image

    rows = []
    for path, _label, split in items:
        data = path.read_bytes()
        rows.append(Image(sha256=hashlib.sha256(data).hexdigest(), path=str(path), source=str(source),
                          byte_size=len(data), split=split))  # fmt: skip
    ws.catalog.add_images(rows)
    index = {r.path: r.id for r in ws.catalog.images()}
    for path, label, _ in items:
        ws.catalog.set_label(index[str(path)], label, origin="import")


def digits_workspace(root: Path, per_class: int | None, seed: int) -> Any:
    from PIL import Image as PILImage
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from picsift.store import Workspace

    d = load_digits()
    idx = np.arange(len(d.target))
    if per_class:
        idx = np.concatenate([np.flatnonzero(d.target == c)[:per_class] for c in range(10)])
    train_idx, test_idx = train_test_split(idx, test_size=0.25, stratify=d.target[idx], random_state=seed)
    folder = root / "images"
    items = []
    for split, ids in (("train", train_idx), ("test", test_idx)):
        for i in ids:
            path = folder / str(d.target[i]) / f"{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img = (d.images[i] / 16.0 * 255).astype(np.uint8)
            PILImage.fromarray(img, "L").resize((32, 32), PILImage.NEAREST).convert("RGB").save(path)
            items.append((path, str(d.target[i]), split))
    ws = Workspace.open(root / "ws", create=True)
    add_images(ws, items, folder)
    return ws


def cifar_workspace(root: Path, train_per_class: int, test_per_class: int, seed: int) -> Any:
    from picsift.store import Workspace

    rng = np.random.default_rng(seed)
    items = []
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in sorted(p.name for p in (CIFAR / split).iterdir()):
            files = sorted((CIFAR / split / c).glob("*.jpg"))
            for i in sorted(rng.permutation(len(files))[:n]):
                items.append((files[i], c, split))
    ws = Workspace.open(root / "ws", create=True)
    add_images(ws, items, CIFAR)
    return ws


def run_candidate(ws: Any, model: str, features: str | None, seed: int, budget: float | None,
                  params: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    from picsift import train
    from picsift.compare import evaluate_run
    from picsift.config import TrainConfig

    cfg = TrainConfig(workspace=ws.root, model=model, features=features, seed=seed, device="cpu",
                      time_budget_min=budget, model_params=params or {})  # fmt: skip
    result = train.run(cfg)
    row = {"model": model, "features": features, "run_id": result.run_id, "train_seconds": result.seconds,
           "val_acc": result.val_acc, "epochs": len(result.history)}  # fmt: skip
    row.update(evaluate_run(ws, result.run_dir))
    return row


def bench_dataset(name: str, ws: Any, args: argparse.Namespace) -> dict[str, Any]:
    from picsift.features import extract

    rows_all = ws.catalog.images()
    print(f"[{name}] {len(rows_all)} images; training fastcnn for {args.cnn_budget} min", file=sys.stderr)
    cnn = run_candidate(ws, "fastcnn", None, args.seed, args.cnn_budget)
    cnn["candidate"] = "fastcnn (default CNN)"
    results = [cnn]
    feature_sets = ["hog", f"run:{cnn['run_id']}"]
    feature_seconds: dict[str, float] = {}
    for feats in feature_sets:
        t = time.perf_counter()
        x = extract(ws, rows_all, feats)  # once, timed; every model below reads the cache
        label = "hog" if feats == "hog" else "cnn-emb"
        feature_seconds[label] = time.perf_counter() - t
        print(f"[{name}] {label}: {x.shape[1]} dims in {feature_seconds[label]:.1f}s", file=sys.stderr)
        for model in CLASSICAL:
            params = {"max_iter": args.gb_rounds} if model == "gradient-boosting" else None
            row = run_candidate(ws, model, feats, args.seed, None, params)
            row["candidate"] = f"{model}:{label}"
            results.append(row)
            print(f"[{name}] {row['candidate']}: acc {row['accuracy']:.4f} fit {row['train_seconds']:.1f}s",
                  file=sys.stderr)  # fmt: skip
    for r in results:
        r["acc_minus_cnn"] = r["accuracy"] - cnn["accuracy"]
        r["train_time_ratio_vs_cnn"] = r["train_seconds"] / cnn["train_seconds"]
    return {"n_images": len(rows_all), "n_test": cnn["n_eval"], "feature_seconds": feature_seconds,
            "rows": results}  # fmt: skip


def bench_clustering(ws: Any, seed: int, cnn_run: str | None) -> list[dict[str, Any]]:
    from picsift.cluster import agreement, cluster_features
    from picsift.features import extract

    rows = ws.catalog.images()
    labels = [r.label for r in rows]
    out = []
    feature_sets = [("hog", "hog")] + ([(f"run:{cnn_run}", "cnn-emb")] if cnn_run else [])
    for feats, label in feature_sets:
        x = extract(ws, rows, feats)
        for k in (10, None):
            t = time.perf_counter()
            res = cluster_features(x, k=k, method="kmeans", max_k=15, seed=seed)
            seconds = time.perf_counter() - t
            out.append({"features": label, "k_requested": k, "k": res.k, "silhouette": res.silhouette,
                        "seconds": seconds, **agreement(labels, res.labels)})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits only, 30 per class, a short CNN (< 1 min)")
    ap.add_argument("--cnn-budget", type=float, default=None, help="minutes for the CNN per dataset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--gb-rounds", type=int, default=30,
        help="gradient-boosting rounds (the model's default is 100; 30 keeps the run to minutes on 1 core)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.cnn_budget is None:
        args.cnn_budget = 0.15 if args.quick else 2.0

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    info = machine()
    t_start = time.perf_counter()
    shutil.rmtree(WORK, ignore_errors=True)  # features and decodes are measured from scratch
    report: dict[str, Any] = {"machine": info, "args": vars(args), "seed": args.seed, "datasets": {}}
    with threadpool_limits(args.threads):
        ws = digits_workspace(WORK / "digits", 30 if args.quick else None, args.seed)
        report["datasets"]["digits"] = bench_dataset("digits", ws, args)
        cnn_run = report["datasets"]["digits"]["rows"][0]["run_id"]
        report["clustering_digits"] = bench_clustering(ws, args.seed, cnn_run)
        partial = results_path("classical_bench", args.quick).with_suffix(".partial.tmp")
        write_json(partial, report, indent=2, default=str)  # survives an interrupted run
        if not args.quick:
            if not CIFAR.is_dir():
                print(f"skipping CIFAR-10: {CIFAR} not found", file=sys.stderr)
            else:
                ws = cifar_workspace(WORK / "cifar10", 400, 100, args.seed)
                report["datasets"]["cifar10-5k"] = bench_dataset("cifar10-5k", ws, args)
    report["total_seconds"] = time.perf_counter() - t_start
    out = results_path("classical_bench", args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report, indent=2, default=str)
    print_tables(report, out)


def print_tables(report: dict[str, Any], out: Path) -> None:
    info = report["machine"]
    print(f"\nmachine: {info['cpu']}, {report['args']['threads']} thread(s), torch {info['torch']}, "
          f"sklearn {info['sklearn']}, {info['matmul_fp32_gflops']} GFLOP/s fp32 matmul measured; "
          f"seed {report['seed']}, 1 run per row; total {report['total_seconds']:.0f}s")  # fmt: skip
    print("published anchors (other data/protocols; context, not peers):")
    for data, what, acc in ANCHORS:
        print(f"  {data:14s} {what:48s} {acc:.3f}")
    cl = report["clustering_digits"]
    print("\nk-means on digits (all images, labels only for scoring):")
    print(f"  {'features':9s} {'k':>5s} {'silhouette':>10s} {'purity':>7s} {'NMI':>6s} {'ARI':>6s}")
    for r in cl:
        k = f"{r['k']}" + ("*" if r["k_requested"] is None else "")
        print(
            f"  {r['features']:9s} {k:>5s} {r['silhouette']:10.3f} {r['purity']:7.3f} {r['nmi']:6.3f} {r['ari']:6.3f}"
        )
    print("  (* k chosen by silhouette)")
    for name, d in report["datasets"].items():
        fs = ", ".join(f"{k} {v:.1f}s" for k, v in d["feature_seconds"].items())
        print(f"\n{name}: {d['n_images']} images, test {d['n_test']}; feature extraction (all images): {fs}")
        print(f"  {'candidate':28s} {'test acc':>8s} {'macro F1':>8s} {'vs CNN':>7s} {'train s':>8s} "
              f"{'x CNN time':>10s} {'ms/img':>7s} {'size':>9s}")  # fmt: skip
        for r in sorted(d["rows"], key=lambda r: -r["accuracy"]):
            print(f"  {r['candidate']:28s} {r['accuracy']:8.4f} {r['macro_f1']:8.4f} {r['acc_minus_cnn']:+7.3f} "
                  f"{r['train_seconds']:8.1f} {r['train_time_ratio_vs_cnn']:10.3f} "
                  f"{r['predict_ms_per_image']:7.2f} {r['model_bytes'] / 1024:8.0f}K")  # fmt: skip
    print(f"\nresults: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
