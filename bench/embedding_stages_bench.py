"""The stages on the pretrained embedding vs hand features: label issues on hymenoptera, clustering NMI.

    python bench/embedding_stages_bench.py            # seeds 0,1,2
    python bench/embedding_stages_bench.py --quick    # seed 0

1. Label issues, hymenoptera (../shared/datasets/hymenoptera, train + val: 397 photos of ants and bees): 5% of
   the labels flipped (per seed), imported into a workspace, `picsift clean --checks labels` with the default
   embedding (EfficientNet-Lite0 when installed: a cross-validated logistic head) and with `--extractor hand`
   (hand descriptors: ridge on them, the model the stage used before). Precision, recall, F1 of the flagged
   images against the flipped ones; the logistic head's C swept for information (default fixed beforehand).
2. Clustering, k-means with k = the number of classes (picsift.cluster.cluster_features), on hymenoptera and on
   1,000 CIFAR-10 test images (100 per class): NMI / ARI / purity against the true classes for the pretrained
   embedding, HOG and the clean stage's hand descriptors; 3 k-means seeds each.
CIFAR-10 label issues and near duplicates: bench/curate_bench.py (planted problems) with the same default.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchutil import machine_info, results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera"
CIFAR_TEST = DATASETS / "cifar10" / "test"
WORK = REPO / "bench" / "work" / "stages"
C_SWEEP = (0.001, 0.003, 0.01, 0.05, 0.3)


def prf(pred: set[str], true: set[str]) -> dict[str, float]:
    tp = len(pred & true)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(true) if true else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
            "tp": tp, "pred": len(pred), "true": len(true)}  # fmt: skip


# ---- 1. label issues on hymenoptera -------------------------------------------------------------------------


def planted_hymenoptera(root: Path, seed: int, rate: float = 0.05) -> set[str]:
    """Copy every hymenoptera photo to root/<label>/, flipping `rate` of the labels; -> the flipped file names."""
    if root.exists():
        shutil.rmtree(root)
    files = sorted((f, f.parent.name) for f in HYMENOPTERA.glob("*/*/*") if f.is_file())
    classes = sorted({c for _, c in files})
    rng = np.random.default_rng(seed)
    flip = set(rng.choice(len(files), round(rate * len(files)), replace=False).tolist())
    flipped = set()
    for i, (f, cls) in enumerate(files):
        label = classes[1 - classes.index(cls)] if i in flip else cls
        name = f"{f.parent.parent.name}_{f.name}"  # train and val may share a file name
        dest = root / label / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        if i in flip:
            flipped.add(name)
    return flipped


def label_issues_hymenoptera(seed: int) -> dict[str, Any]:
    from picsift import ingest
    from picsift.config import CleanConfig, ImportConfig
    from picsift.curate import run
    from picsift.curate.labels import find_label_issues, logistic_cv_pred_probs
    from picsift.features import extract
    from picsift.store import Workspace

    root, ws_dir = WORK / f"hymenoptera-{seed}", WORK / f"hymenoptera-ws-{seed}"
    flipped = planted_hymenoptera(root, seed)
    if ws_dir.exists():
        shutil.rmtree(ws_dir)
    ingest.run(ImportConfig(source=str(root), workspace=ws_dir))
    names = {r.id: Path(r.path).name for r in Workspace.open(ws_dir).catalog.images(readable=None)}
    out: dict[str, Any] = {"seed": seed, "images": len(names), "flipped": len(flipped)}
    for tag, extractor in (("pretrained", "auto"), ("hand", "hand")):
        t = time.perf_counter()
        result = run(CleanConfig(workspace=ws_dir, checks=("labels",), extractor=extractor))
        wall = time.perf_counter() - t
        flagged = {names[f.image_ids[0]] for f in result.findings if f.kind == "label_issue"}
        out[tag] = {**prf(flagged, flipped), "wall_s": round(wall, 2), "label_model": result.label_model,
                    "embedding": result.embedding.get("text")}  # fmt: skip
    # C sweep (information only: the default was fixed on CIFAR-10's tuning seed before this ran)
    ws = Workspace.open(ws_dir)
    rows = [r for r in ws.catalog.images(labeled=True) if r.readable]
    choice = out["pretrained"]["label_model"].get("extractor")
    if choice and choice != "hand":
        x = extract(ws, rows, choice)
        classes = sorted({str(r.label) for r in rows})
        y = np.array([classes.index(str(r.label)) for r in rows])
        sweep = {}
        for c in C_SWEEP:
            probs = logistic_cv_pred_probs(x, y, len(classes), c=c)
            found = find_label_issues([r.id for r in rows], y, probs, classes)
            sweep[str(c)] = prf({names[f.image_ids[0]] for f in found}, flipped)
        out["pretrained_c_sweep"] = sweep
    return out


# ---- 2. clustering --------------------------------------------------------------------------------------------


def load_images(files: list[tuple[Path, str]], size: int) -> np.ndarray:
    from picsift.data.images import load_rgb, resize_square

    return np.stack([resize_square(load_rgb(f), size) for f, _ in files])


def clustering(dataset: str, files: list[tuple[Path, str]], extractor: str | None) -> dict[str, Any]:
    from picsift.cluster import agreement, cluster_features
    from picsift.curate.descriptors import hand_features
    from picsift.features import extract_arrays, get_extractor

    labels = [c for _, c in files]
    k = len(set(labels))
    feats: dict[str, np.ndarray] = {}
    times: dict[str, float] = {}
    names = ([extractor] if extractor else []) + ["hog", "hand"]
    for name in names:
        t = time.perf_counter()
        if name == "hand":
            feats[name] = hand_features(load_images(files, 64))
        else:
            ext = get_extractor(name)
            feats[name] = extract_arrays(load_images(files, ext.size), ext)
        times[name] = round(time.perf_counter() - t, 1)
    out: dict[str, Any] = {"dataset": dataset, "images": len(files), "k": k}
    for name, x in feats.items():
        runs = [agreement(labels, cluster_features(x, k=k, seed=s).labels) for s in range(3)]
        out[name] = {m: statistics.median(r[m] for r in runs) for m in ("nmi", "ari", "purity")}
        out[name]["features_s"] = times[name]
        out[name]["nmi_runs"] = [round(r["nmi"], 4) for r in runs]
    return out


def cifar_subset(per_class: int) -> list[tuple[Path, str]]:
    return [(f, c.name) for c in sorted(CIFAR_TEST.iterdir()) if c.is_dir() for f in sorted(c.iterdir())[:per_class]]


# ---- main ---------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="seed 0 only, 300 CIFAR-10 images")
    ap.add_argument("--seeds", default=None, help="comma list of flip seeds (default 0,1,2; --quick 0)")
    args = ap.parse_args()
    if not HYMENOPTERA.is_dir() or not CIFAR_TEST.is_dir():
        sys.exit(f"datasets not found under {DATASETS}")
    from picsift.features import default_embedding

    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    choice = default_embedding()
    info = machine_info()
    t0 = time.perf_counter()
    labels = [label_issues_hymenoptera(s) for s in seeds]
    hym_files = sorted((f, f.parent.name) for f in HYMENOPTERA.glob("*/*/*") if f.is_file())
    extractor = choice.extractor if choice.pretrained else None
    clusters = [
        clustering("hymenoptera", hym_files, extractor),
        clustering("cifar10-test", cifar_subset(30 if args.quick else 100), extractor),
    ]
    doc = {"benchmark": "embedding_stages_bench", "command": "python bench/embedding_stages_bench.py"
           + (" --quick" if args.quick else ""), "embedding": choice.to_dict(), "machine": info, "seeds": seeds,
           "label_issues_hymenoptera": labels, "clustering": clusters,
           "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    out = results_path("embedding_stages_bench", args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc, indent=1)

    def med(path: list[str]) -> str:
        vals = []
        for r in labels:
            v: Any = r
            for p in path:
                v = v[p]
            vals.append(float(v))
        return f"{statistics.median(vals):.3f} ({min(vals):.3f}-{max(vals):.3f})" if len(vals) > 1 else f"{vals[0]:.3f}"

    print(f"\n{choice.text}")
    print(f"label issues, hymenoptera ({labels[0]['images']} photos, {labels[0]['flipped']} flipped), "
          f"median (min-max) over seeds {seeds}")  # fmt: skip
    print("| features | label model | precision | recall | F1 | CV agreement |\n|---|---|---|---|---|---|")
    for tag in ("pretrained", "hand"):
        lm = labels[0][tag]["label_model"]
        name = lm.get("extractor", tag)
        cells = [med([tag, m]) for m in ("precision", "recall", "f1")] + [med([tag, "label_model", "cv_agreement"])]
        print(f"| {name} | {lm.get('model')} | {' | '.join(cells)} |")
    if "pretrained_c_sweep" in labels[0]:
        sweep = {c: f"P {med(['pretrained_c_sweep', c, 'precision'])} R {med(['pretrained_c_sweep', c, 'recall'])}"
                 for c in labels[0]["pretrained_c_sweep"]}  # fmt: skip
        print(f"logistic C sweep (information): {sweep}")
    print("\nclustering, k-means with k = classes, median of 3 k-means seeds")
    print("| dataset | features | NMI | ARI | purity | features s |\n|---|---|---|---|---|---|")
    for c in clusters:
        for name in [n for n in c if isinstance(c[n], dict)]:
            m = c[name]
            print(f"| {c['dataset']} ({c['images']}) | {name} | {m['nmi']:.3f} | {m['ari']:.3f} | {m['purity']:.3f} "
                  f"| {m['features_s']} |")  # fmt: skip
    print(f"\n{doc['seconds']} s in all; load average {info.get('load_avg_1min')} on {info.get('cores')} cores")


if __name__ == "__main__":
    main()
