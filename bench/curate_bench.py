"""Clean-stage benchmark: planted problems in CIFAR-10 images, per-kind precision/recall/F1 and wall time,
with imagededup (PHash; its CNN if weights can be had) and plain cleanlab as peers in the same run.

    python bench/curate_bench.py            # 2,000 images (+ planted copies and corrupt files), seeds 0,2,3
    python bench/curate_bench.py --quick    # 300 images, seed 0: a smoke test under a minute
    python bench/curate_bench.py --extractor hand   # the hand descriptors even when pretrained weights exist

The embedding (near-duplicate candidates, outliers, label issues) is the clean stage's default: EfficientNet-Lite0
when its weights are installed (label issues from a cross-validated logistic head), else hand descriptors (label
issues from the fast CNN x ridge); results go to curate_bench.json, or curate_bench_<extractor>.json for another.

Planted, on disjoint images: near-duplicate copies (1-2 of: JPEG quality 30-90, resize 0.5-2x, 5-10% crop,
brightness x0.8-1.2), byte-identical copies, corrupt files (truncated JPEGs and garbage bytes), blurred
images (Gaussian, radius 1-1.5 px on 32 px), darkened images (x0.15-0.3) and 5% flipped labels.
Thresholds were chosen on seed 1, which is not reported. Data: ../shared/datasets/cifar10 (JPEG CIFAR-10).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from benchutil import machine_info as machine
from benchutil import results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10" / "train"
WORK = REPO / "bench" / "work" / "curate"
RESULTS = REPO / "bench" / "results" / "curate_bench.json"


# ---- the planted-problem dataset ----------------------------------------------------------------------


def near_copy(img: Image.Image, rng: np.random.Generator) -> tuple[bytes, list[str]]:
    kinds = list(rng.choice(["jpeg", "resize", "crop", "brightness"], size=int(rng.integers(1, 3)), replace=False))
    quality = 95
    for k in kinds:
        w, h = img.size
        if k == "resize":
            s = float(rng.uniform(0.5, 2.0))
            img = img.resize((max(8, round(w * s)), max(8, round(h * s))), Image.BICUBIC)
        elif k == "crop":
            f = float(rng.uniform(0.05, 0.10))
            cw, ch = round(w * (1 - f)), round(h * (1 - f))
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            img = img.crop((x0, y0, x0 + cw, y0 + ch))
        elif k == "brightness":
            img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.8, 1.2)))
        else:
            quality = int(rng.integers(30, 91))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue(), kinds


def build(root: Path, n: int, seed: int) -> dict[str, Any]:
    """Write the planted dataset to root/<class>/*.jpg; return the truth, by file path."""
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in CIFAR.iterdir() if p.is_dir())
    pool = [(c, p) for c in classes for p in sorted((CIFAR / c).iterdir())]
    pick = rng.choice(len(pool), n + n // 50, replace=False)
    chosen, spare = [pool[i] for i in pick[:n]], [pool[i] for i in pick[n:]]
    order = rng.permutation(n)
    sizes = {"near": n // 20, "exact": n // 200, "blur": n // 50, "dark": n // 50, "flip": n // 20}
    roles: dict[int, str] = {}
    start = 0
    for role, k in sizes.items():
        for i in order[start : start + k]:
            roles[int(i)] = role
        start += k
    truth: dict[str, Any] = {
        "near": [],
        "exact": [],
        "blur": [],
        "dark": [],
        "flip": [],
        "corrupt": [],
        "transforms": {},
    }
    for i, (cls, src) in enumerate(chosen):
        role = roles.get(i, "clean")
        label = cls
        if role == "flip":
            label = classes[(classes.index(cls) + int(rng.integers(1, len(classes)))) % len(classes)]
        out = root / label / f"{cls}_{src.stem}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        if role in ("blur", "dark"):
            img = Image.open(src).convert("RGB")
            if role == "blur":
                img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 1.5))))
            else:
                img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.15, 0.3)))
            img.save(out, "JPEG", quality=95)
            truth[role].append(str(out))
        else:
            shutil.copyfile(src, out)
        if role == "flip":
            truth["flip"].append(str(out))
        elif role == "near":
            data, kinds = near_copy(Image.open(src).convert("RGB"), rng)
            copy = out.with_name(out.stem + "_copy.jpg")
            copy.write_bytes(data)
            truth["near"].append((str(out), str(copy)))
            truth["transforms"][str(copy)] = kinds
        elif role == "exact":
            dup = out.with_name(out.stem + "_dup.jpg")
            shutil.copyfile(out, dup)
            truth["exact"].append((str(out), str(dup)))
    n_corrupt = max(2, round(n * 0.015))
    for j in range(n_corrupt):
        cls, src = spare[j % len(spare)]
        bad = root / cls / f"corrupt_{j}.jpg"
        raw = src.read_bytes()
        bad.write_bytes(raw[: len(raw) // 2] if j % 2 == 0 else bytes(rng.integers(0, 256, 600, dtype=np.uint8)))
        truth["corrupt"].append(str(bad))
    truth["n_files"] = sum(1 for _ in root.rglob("*.jpg"))
    # Byte-identical files are a fact, not a judgement: CIFAR-10 has a few of its own (and two truncated
    # copies can coincide), so every identical pair counts as a true exact duplicate.
    by_hash: dict[str, list[str]] = {}
    for f in sorted(root.rglob("*.jpg")):
        by_hash.setdefault(hashlib.sha256(f.read_bytes()).hexdigest(), []).append(str(f))
    truth["exact"] = sorted(pairs_of([g for g in by_hash.values() if len(g) > 1]))
    return truth


# ---- scoring ------------------------------------------------------------------------------------------


def prf(pred: set[Any], true: set[Any], ignore: set[Any] | None = None) -> dict[str, float]:
    pred = pred - (ignore or set())
    tp = len(pred & true)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(true) if true else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "tp": tp,
        "pred": len(pred),
        "true": len(true),
    }


def pairs_of(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in combinations(g, 2)}  # type: ignore[misc]


def run_picsift(root: Path, truth: dict[str, Any], ws_dir: Path, extractor: str = "auto") -> dict[str, Any]:
    from picsift import ingest
    from picsift.config import CleanConfig, ImportConfig
    from picsift.curate import run

    if ws_dir.exists():
        shutil.rmtree(ws_dir)
    t = time.perf_counter()
    ingest.run(ImportConfig(source=str(root), workspace=ws_dir))
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    result = run(CleanConfig(workspace=ws_dir, extractor=extractor))
    t_clean = time.perf_counter() - t
    from picsift.store import Workspace

    paths = {r.id: r.path for r in Workspace.open(ws_dir).catalog.images(readable=None, include_excluded=True)}

    def ids_to_paths(kind: str) -> set[str]:
        return {str(Path(paths[i]).resolve()) for f in result.findings if f.kind == kind for i in f.image_ids}

    dup_groups = [
        [str(Path(paths[i]).resolve()) for i in f.image_ids]
        for f in result.findings
        if f.kind in ("near_duplicate", "exact_duplicate")
    ]
    near_true = {tuple(sorted(p)) for p in truth["near"]}
    exact_true = {tuple(sorted(p)) for p in truth["exact"]}
    pred_pairs = pairs_of(dup_groups)
    return {
        "near_duplicates": prf(pred_pairs, near_true, ignore=exact_true),
        "exact_duplicates": prf(
            pairs_of(
                [
                    g
                    for g, f in zip(
                        dup_groups,
                        [f for f in result.findings if f.kind in ("near_duplicate", "exact_duplicate")],
                        strict=True,
                    )
                    if f.kind == "exact_duplicate"
                ]
            ),
            exact_true,
        ),
        "unreadable": prf(ids_to_paths("unreadable"), set(truth["corrupt"])),
        "blurry": prf(ids_to_paths("blurry"), set(truth["blur"])),
        "too_dark": prf(ids_to_paths("too_dark"), set(truth["dark"])),
        "label_issues": {**prf(ids_to_paths("label_issue"), set(truth["flip"])), **top_precision(result, paths, truth)},
        "label_model": result.label_model,
        "embedding": result.embedding,
        "near_dup_recall_by_transform": recall_by_transform(pred_pairs, truth),
        "counts": result.counts,
        "timings_s": {**{k: round(v, 2) for k, v in result.timings_s.items()}, "import": round(t_import, 2)},
        "clean_wall_s": round(t_clean, 2),
    }


def top_precision(result: Any, paths: dict[int, str], truth: dict[str, Any], k: int = 50) -> dict[str, float]:
    """Precision of the k highest-scored label issues: the head of the review queue the report shows."""
    flags = sorted((f for f in result.findings if f.kind == "label_issue"), key=lambda f: -f.score)[:k]
    hits = sum(str(Path(paths[f.image_ids[0]]).resolve()) in set(truth["flip"]) for f in flags)
    return {f"precision_top{k}": round(hits / max(1, len(flags)), 4)}


def run_picsift_linear(ws_dir: Path, truth: dict[str, Any], extractor: str = "auto") -> dict[str, Any]:
    """picsift's label check with the linear model only (`--label-model linear`), on the same workspace."""
    from picsift.config import CleanConfig
    from picsift.curate import run
    from picsift.store import Workspace

    t = time.perf_counter()
    result = run(CleanConfig(workspace=ws_dir, checks=("labels",), label_model="linear", extractor=extractor))
    wall = time.perf_counter() - t
    paths = {r.id: r.path for r in Workspace.open(ws_dir).catalog.images(readable=None, include_excluded=True)}
    pred = {str(Path(paths[i]).resolve()) for f in result.findings if f.kind == "label_issue" for i in f.image_ids}
    return {**prf(pred, set(truth["flip"])), **top_precision(result, paths, truth), "wall_s": round(wall, 2),
            "label_model": result.label_model}  # fmt: skip


def recall_by_transform(pred_pairs: set[tuple[str, str]], truth: dict[str, Any]) -> dict[str, str]:
    hits: dict[str, list[int]] = {}
    for a, b in truth["near"]:
        for k in truth["transforms"][b]:
            hits.setdefault(str(k), []).append(int(tuple(sorted((a, b))) in pred_pairs))
    return {k: f"{sum(v)}/{len(v)}" for k, v in sorted(hits.items())}


def run_imagededup_phash(root: Path, truth: dict[str, Any]) -> dict[str, Any]:
    from imagededup.methods import PHash

    t = time.perf_counter()
    dups = PHash(verbose=False).find_duplicates(image_dir=root, max_distance_threshold=10, recursive=True)
    wall = time.perf_counter() - t
    pred = {tuple(sorted((str((root / a).resolve()), str((root / b).resolve())))) for a, bs in dups.items() for b in bs}
    near_true = {tuple(sorted(p)) for p in truth["near"]}
    exact_true = {tuple(sorted(p)) for p in truth["exact"]}
    return {
        "near_duplicates": prf(pred, near_true, ignore=exact_true),  # type: ignore[arg-type]
        "near_dup_recall_by_transform": recall_by_transform(pred, truth),  # type: ignore[arg-type]
        "wall_s": round(wall, 2),
        "max_distance_threshold": 10,
    }


def try_imagededup_cnn() -> dict[str, Any]:
    try:
        from imagededup.methods import CNN

        CNN(verbose=False)
    except Exception as e:  # the weights come from the internet; here there is none
        return {"available": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    return {"available": True}


def run_cleanlab_logreg(ws_dir: Path, truth: dict[str, Any]) -> dict[str, Any]:
    """The peer: cleanlab.find_label_issues on 5-fold cross-validated scikit-learn LogisticRegression
    probabilities, on the same hand-made features and the same images picsift's label check sees."""
    import warnings

    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from picsift.curate.descriptors import hand_features
    from picsift.data.cache import DecodedCache
    from picsift.store import Workspace

    ws = Workspace.open(ws_dir)
    rows = [r for r in ws.catalog.images(labeled=True) if r.duplicate_of is None]
    x = DecodedCache(ws.cache_dir, 64).get_many([(r.sha256, r.path) for r in rows])
    t = time.perf_counter()
    feats = hand_features(x)
    classes = sorted({str(r.label) for r in rows})
    y = np.array([classes.index(str(r.label)) for r in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        probs = cross_val_predict(
            clf, feats, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba"
        )
    issues = find_label_issues(y, probs)
    wall = time.perf_counter() - t
    pred = {str(Path(rows[i].path).resolve()) for i in np.flatnonzero(issues)}
    return {
        "label_issues": prf(pred, set(truth["flip"])),
        "wall_s": round(wall, 2),
        "cv_accuracy_vs_given": round(float((probs.argmax(1) == y).mean()), 4),
    }


def run_digits(seed: int) -> dict[str, Any]:
    """The label check where a fast linear model is strong: scikit-learn's digits (1,797 8x8 images), 5% flipped.
    The same functions as the workspace pipeline, on plain arrays; the peer is CV LogisticRegression."""
    import warnings

    from cleanlab.filter import find_label_issues as cl_find
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from picsift.curate.descriptors import hand_features
    from picsift.curate.labels import cross_val_pred_probs, find_label_issues

    d = load_digits()
    rng = np.random.default_rng(seed)
    y = d.target.copy()
    flip = rng.choice(len(y), len(y) // 20, replace=False)
    y[flip] = (y[flip] + rng.integers(1, 10, len(flip))) % 10
    truth = {int(i) for i in flip}
    img = (d.images / 16.0 * 255).astype(np.uint8)
    x = np.repeat(np.kron(img, np.ones((4, 4), np.uint8))[..., None], 3, axis=3)  # 32x32 RGB
    t = time.perf_counter()
    probs = cross_val_pred_probs(hand_features(x), y, 10, seed=seed)
    ours = {f.image_ids[0] for f in find_label_issues(list(range(len(y))), y, probs, [str(c) for c in range(10)])}
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = cross_val_predict(
            LogisticRegression(max_iter=200), d.data, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
            method="predict_proba",
        )  # fmt: skip
    peer = {int(i) for i in np.flatnonzero(cl_find(y, lr))}
    return {
        "picsift": {**prf(ours, truth), "wall_s": round(t_ours, 2)},
        "cleanlab_logreg": {**prf(peer, truth), "wall_s": round(time.perf_counter() - t, 2)},
    }


def summarise(runs: list[dict[str, Any]], path: list[str]) -> str:
    vals = []
    for r in runs:
        v: Any = r
        for k in path:
            v = v[k]
        vals.append(float(v))
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{statistics.median(vals):.3f} ({min(vals):.3f}-{max(vals):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 images, one seed")
    ap.add_argument("--n", type=int, default=None, help="clean CIFAR-10 images before planting (default 2000)")
    ap.add_argument("--seeds", default=None, help="comma list (default 0,2,3; --quick: 0)")
    ap.add_argument("--extractor", default="auto", help="clean's embedding: auto (default), hand, or a features name")
    args = ap.parse_args()
    if not CIFAR.is_dir():
        sys.exit(f"CIFAR-10 not found at {CIFAR}")
    n = args.n or (300 if args.quick else 2000)
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,2,3")).split(",")]
    info = machine()
    cnn = try_imagededup_cnn()
    runs = []
    for seed in seeds:
        root = (WORK / f"data-{n}-{seed}").resolve()
        truth = build(root, n, seed)
        # Interleaved per seed: picsift, then the peers on the same files.
        ours = run_picsift(root, truth, WORK / f"ws-{n}-{seed}", args.extractor)
        try:
            phash: dict[str, Any] | None = run_imagededup_phash(root, truth)
        except ImportError:
            phash = None
        peer_lab = run_cleanlab_logreg(WORK / f"ws-{n}-{seed}", truth)
        linear = run_picsift_linear(WORK / f"ws-{n}-{seed}", truth, args.extractor)
        digits = run_digits(seed)
        runs.append(
            {"seed": seed, "files": truth["n_files"], "picsift": ours, "imagededup_phash": phash,
             "cleanlab_logreg": peer_lab, "picsift_linear": linear, "digits": digits}
        )  # fmt: skip
        print(f"seed {seed}: {truth['n_files']} files, picsift clean {ours['clean_wall_s']}s", file=sys.stderr)
    doc = {"machine": info, "n_clean_images": n, "seeds": seeds, "imagededup_cnn": cnn, "runs": runs,
           "embedding": runs[0]["picsift"]["embedding"],
           "command": "python bench/curate_bench.py" + (" --quick" if args.quick else "")
           + (f" --extractor {args.extractor}" if args.extractor != "auto" else "")}  # fmt: skip
    stem = "curate_bench" + (f"_{args.extractor.replace('@', '-')}" if args.extractor != "auto" else "")
    out = results_path(stem, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc, indent=1)
    rows = [
        ("near duplicates", "picsift (aligned thumbnails + pHash, faiss)", ["picsift", "near_duplicates"]),
        ("near duplicates", "imagededup PHash (threshold 10)", ["imagededup_phash", "near_duplicates"]),
        ("exact duplicates", "picsift (sha256)", ["picsift", "exact_duplicates"]),
        ("corrupt files", "picsift", ["picsift", "unreadable"]),
        ("blurred", "picsift (Laplacian variance / gradient energy)", ["picsift", "blurry"]),
        ("darkened", "picsift", ["picsift", "too_dark"]),
        (
            "flipped labels (5%)",
            f"picsift default ({runs[0]['picsift']['label_model'].get('model')} CV on "
            f"{runs[0]['picsift']['label_model'].get('extractor')}, "
            f"{runs[0]['picsift']['label_model'].get('selection', {}).get('rule', 'both')} selection)",
            ["picsift", "label_issues"],
        ),
        ("flipped labels (5%)", "picsift --label-model linear (ridge CV + cleanlab)", ["picsift_linear"]),
        (
            "flipped labels (5%)",
            "cleanlab on CV LogisticRegression (hand features)",
            ["cleanlab_logreg", "label_issues"],
        ),
        ("digits: flipped labels (5%)", "picsift (ridge CV + cleanlab)", ["digits", "picsift"]),
        ("digits: flipped labels (5%)", "cleanlab on CV LogisticRegression", ["digits", "cleanlab_logreg"]),
    ]
    n_runs = len(runs)
    print(f"\n{n} CIFAR-10 images + planted problems, {n_runs} seed(s) {seeds}; median (min-max) over seeds")
    print(doc["embedding"].get("text", ""))
    print("| problem | method | precision | recall | F1 |\n|---|---|---|---|---|")
    for prob, method, path in rows:
        if any(r[path[0]] is None for r in runs):
            continue
        cells = [summarise(runs, [*path, m]) for m in ("precision", "recall", "f1")]
        print(f"| {prob} | {method} | {' | '.join(cells)} |")
    wall = summarise(runs, ["picsift", "clean_wall_s"])
    print(f"\npicsift clean, all checks, {runs[0]['files']} files: {wall} s wall "
          f"(import {summarise(runs, ['picsift', 'timings_s', 'import'])} s, not included); "
          f"load average {info['load_avg_1min']} on {info['cores']} cores")  # fmt: skip
    if runs[0]["imagededup_phash"]:
        print(f"imagededup PHash wall {summarise(runs, ['imagededup_phash', 'wall_s'])} s; "
              f"cleanlab+LogisticRegression wall {summarise(runs, ['cleanlab_logreg', 'wall_s'])} s")  # fmt: skip
    print(
        f"near-dup recall by transform (seed {seeds[0]}): picsift {runs[0]['picsift']['near_dup_recall_by_transform']}"
    )
    if runs[0]["imagededup_phash"]:
        print(f"  imagededup PHash {runs[0]['imagededup_phash']['near_dup_recall_by_transform']}")
    print(f"imagededup CNN: {cnn}")
    print(f"label issues, precision of the 50 top-scored flags: default {summarise(runs, ['picsift', 'label_issues', 'precision_top50'])}, "
          f"linear {summarise(runs, ['picsift_linear', 'precision_top50'])}; label-model agreement with the labels "
          f"{summarise(runs, ['picsift', 'label_model', 'cv_agreement'])}")  # fmt: skip
    if "cnn_s" in runs[0]["picsift"]["label_model"]:
        print(f"CNN alone {summarise(runs, ['picsift', 'label_model', 'cnn_cv_agreement'])}, CNN folds "
              f"{summarise(runs, ['picsift', 'label_model', 'cnn_s'])} s")  # fmt: skip


if __name__ == "__main__":
    main()
