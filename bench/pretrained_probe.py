"""Linear probe of each pretrained backbone whose weights are installed: hymenoptera train -> val.

    python bench/pretrained_probe.py [--models efficientnet_lite0,...] [--size 224|native] [--threads 2]

The hymenoptera photos (../shared/datasets/hymenoptera: 244 train, 153 val, ants vs bees) are decoded
once per storage size, embedded with `picsift.models.pretrained.embed` (its default CPU backend), and a
logistic regression (scikit-learn, standardised features, C=0.01, fixed before looking at val) is fit on
train and scored on val. Other C values are reported for information only (chosen on val they would be
tuned on the test set). Embedding time counts the forward passes, not decoding (reported apart).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchutil import machine_info
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
HYMENOPTERA = REPO.parent / "shared" / "datasets" / "hymenoptera"
RESULTS = REPO / "bench" / "results" / "pretrained_probe.json"
C_MAIN = 0.01
C_INFO = (0.001, 0.01, 0.1, 1.0)


def decode(split: str, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from picsift.data.images import load_rgb, resize_square

    classes = sorted(p.name for p in (HYMENOPTERA / split).iterdir() if p.is_dir())
    x, y = [], []
    for c, name in enumerate(classes):
        for f in sorted((HYMENOPTERA / split / name).iterdir()):
            x.append(resize_square(load_rgb(f), size))
            y.append(c)
    return np.stack(x), np.array(y), classes


def probe(ftr: np.ndarray, ytr: np.ndarray, fva: np.ndarray, yva: np.ndarray, c: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    clf.fit(ftr, ytr)
    return float((clf.predict(fva) == yva).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None, help="comma list (default: every installed one)")
    ap.add_argument("--size", default="224", help="input size in px, or 'native' for each model's own")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    import torch

    from picsift.models.pretrained import available_pretrained, create_pretrained_backbone, embed, make_embedder

    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else [w.name for w in available_pretrained()]
    decoded: dict[int, Any] = {}
    rows = []
    for name in names:
        model, dc, found = create_pretrained_backbone(name, num_classes=0)
        if args.size != "native":
            dc = dc.with_size(int(args.size))
        if dc.storage_size not in decoded:
            t = time.perf_counter()
            decoded[dc.storage_size] = (decode("train", dc.storage_size), decode("val", dc.storage_size))
            print(f"decoded at {dc.storage_size}px in {time.perf_counter() - t:.1f}s")
        (xtr, ytr, classes), (xva, yva, _) = decoded[dc.storage_size]
        t = time.perf_counter()
        embedder = make_embedder(model, dc, backend=args.backend)
        setup = time.perf_counter() - t
        t = time.perf_counter()
        ftr = embed(embedder, xtr)
        fva = embed(embedder, xva)
        seconds = time.perf_counter() - t
        accs = {str(c): round(probe(ftr, ytr, fva, yva, c), 4) for c in C_INFO}
        row = {
            "model": name,
            "weights": found.source,
            "input_size": dc.input_size,
            "embed_dim": int(ftr.shape[1]),
            "backend": embedder.backend,
            "setup_s": round(setup, 2),
            "embed_s": round(seconds, 2),
            "images_per_s": round((len(xtr) + len(xva)) / seconds, 1),
            "val_accuracy": accs[str(C_MAIN)],
            "val_accuracy_by_C": accs,
        }
        rows.append(row)
        print(json.dumps(row))
    report = {
        "benchmark": "pretrained_probe",
        "dataset": "hymenoptera",
        "train": int(len(decoded[next(iter(decoded))][0][1])),
        "val": int(len(decoded[next(iter(decoded))][1][1])),
        "classes": classes,
        "probe": f"StandardScaler + LogisticRegression(C={C_MAIN})",
        "threads": args.threads,
        "machine": machine_info(),
        "results": rows,
    }
    out = RESULTS if args.size == "224" else RESULTS.with_name(f"pretrained_probe_{args.size}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report, indent=2)
    print(f"{'model':<20} {'px':>4} {'val acc':>8} {'img/s':>7} {'embed s':>8}")
    for r in rows:
        print(
            f"{r['model']:<20} {r['input_size']:>4} {r['val_accuracy']:>8.3f} {r['images_per_s']:>7.1f} {r['embed_s']:>8.1f}"
        )
    print(f"written {out}")


if __name__ == "__main__":
    main()
