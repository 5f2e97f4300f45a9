"""Improve-stage benchmark on a CIFAR-10 subset (the JPEG copy in ../shared/datasets/cifar10).

    python bench/improve_bench.py [--quick]

Rows (test split, never tuned on):
1. accuracy: single fast-CNN run vs the same run with TTA vs a 3-seed mean ensemble vs a tuned run
   (Optuna, a fixed small number of trials), all at the same small width and epoch budget;
2. long-tailed training set (imbalance ratio 10): --balance none vs auto on macro-F1, plus per-class
   thresholds fitted on validation data;
3. calibration: ECE and NLL before / after temperature scaling (fitted on validation);
4. unknown rejection: AUROC with 2 classes held out of training (their test images are the unknowns).

The machine it was written on has 2 shared CPU cores, so the budget is deliberately small: a narrow
fast CNN (widths 16/32/64), a few epochs, one torch thread. Absolute accuracies are therefore far from
the model's best; the comparisons (same data, same budget, same run) are the point.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchutil import machine_info as machine
from benchutil import results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pick(split: str, per_class: dict[str, int], seed: int, offset: int = 0) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for c, n in per_class.items():
        files = sorted((CIFAR / split / c).glob("*.jpg"))
        order = rng.permutation(len(files))[offset : offset + n]
        out += [(files[i], c) for i in sorted(order)]
    return out


def make_workspace(root: Path, train: list, val: list, test: list):  # type: ignore[no-untyped-def]
    from picsift.store import Workspace
    from picsift.store.schema import Image

    ws = Workspace.open(root, create=True)
    rows = []
    for split, items in (("train", train), ("val", val), ("test", test)):
        for path, label in items:
            rows.append(
                Image(
                    sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                    path=str(path),
                    source=str(CIFAR),
                    width=32,
                    height=32,
                    format="JPEG",
                    mode="RGB",
                    label=label,
                    split=split,
                    split_origin="source",
                )
            )
    ws.catalog.add_images(rows)
    return ws


def test_metrics(run_dir: Path, tta: bool = False) -> dict[str, float]:
    from sklearn.metrics import f1_score

    from picsift.improve.calibration import ece, nll
    from picsift.improve.rundata import split_data
    from picsift.inference import Predictor

    p = Predictor.from_run(run_dir, tta=tta)
    test = split_data(run_dir, "test")
    probs = p.predict_arrays(test.x)
    pred = probs.argmax(1)
    return {
        "accuracy": float((pred == test.y).mean()),
        "macro_f1": float(f1_score(test.y, pred, average="macro")),
        "nll": nll(probs, test.y),
        "ece": ece(probs, test.y)[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (under a minute)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not CIFAR.is_dir():
        sys.exit(f"CIFAR-10 not found at {CIFAR}")
    torch.set_num_threads(args.threads)

    from picsift import train
    from picsift.config import TrainConfig
    from picsift.improve.calibration import calibrate
    from picsift.improve.ensemble import make_ensemble
    from picsift.improve.rundata import split_data
    from picsift.improve.thresholds import fit_class_scales
    from picsift.improve.tta import choose_for_run
    from picsift.improve.tune import tune
    from picsift.improve.unknown import evaluate_unknowns, fit_unknown, load_detector

    quick = args.quick
    per_class = 30 if quick else 1000  # training pool per class: 10,000 images in the full run
    n_test = 30 if quick else 200
    epochs = 1 if quick else 4
    trials = 2 if quick else 3
    widths = [8, 16, 32] if quick else [16, 32, 64]
    params = {"widths": widths, "threads": args.threads}
    tmp = Path(tempfile.mkdtemp(prefix="picsift-improve-bench-"))
    timings: dict[str, float] = {}
    results: dict[str, object] = {}

    def cfg(ws_root: Path, **kw: object) -> TrainConfig:
        base = dict(workspace=ws_root, model="fastcnn", epochs=epochs, device="cpu", model_params=dict(params))
        base.update(kw)
        return TrainConfig(**base)  # type: ignore[arg-type]

    # ---- 1. single vs TTA vs ensemble vs tuned --------------------------------------------------------
    n_val = per_class // 10
    pool = pick("train", {c: per_class for c in CLASSES}, seed=0)
    val_items = [it for i, it in enumerate(pool) if i % per_class < n_val]
    train_items = [it for i, it in enumerate(pool) if i % per_class >= n_val]
    test_items = pick("test", {c: n_test for c in CLASSES}, seed=0)
    ws = make_workspace(tmp / "main", train_items, val_items, test_items)
    t = time.perf_counter()
    runs = [train.run(cfg(ws.root, seed=s, run_name=f"seed{s}")) for s in range(3)]
    timings["3 runs"] = time.perf_counter() - t
    single = runs[0].run_dir
    m_single = test_metrics(single)
    tta_choice = choose_for_run(single)
    m_tta = test_metrics(single, tta=True)
    # TTA and calibration are cheap (inference only): measure them on every seed for a spread.
    per_seed = []
    for r in runs:
        first = r.run_dir == single
        views = tta_choice["views"] if first else choose_for_run(r.run_dir)["views"]
        plain = m_single if first else test_metrics(r.run_dir)
        with_tta = m_tta if first else test_metrics(r.run_dir, tta=True)
        cal_r = calibrate(r.run_dir)["test"]
        per_seed.append(
            {
                "run": r.run_dir.name,
                "plain": plain,
                "tta": with_tta,
                "views": views,
                "ece_before": cal_r["ece_before"],
                "ece_after": cal_r["ece_after"],
            }
        )
    ens = make_ensemble([r.run_dir for r in runs], method="mean")
    m_ens = test_metrics(ens)
    seeds = [test_metrics(r.run_dir)["accuracy"] for r in runs]
    t = time.perf_counter()
    summary = tune(cfg(ws.root, seed=0), trials=trials, max_epochs=epochs, study_name="bench")
    timings["tune"] = time.perf_counter() - t
    m_tuned = test_metrics(Path(summary["run_dir"]))
    results["accuracy"] = {
        "single": m_single,
        "tta": m_tta,
        "tta_views": tta_choice["views"],
        "ensemble_3": m_ens,
        "single_seeds_accuracy": seeds,
        "tuned": m_tuned,
        "per_seed": per_seed,
        "tune": {
            k: summary[k]
            for k in (
                "trials_total",
                "trials_complete",
                "trials_pruned",
                "best_params",
                "best_value",
                "search_seconds",
                "materialise_seconds",
            )
        },
    }

    # ---- 2. calibration ---------------------------------------------------------------------------------
    cal = calibrate(single)
    results["calibration"] = {k: cal[k] for k in ("temperature", "val", "test") if k in cal}

    # ---- 3. long-tailed: balance none vs auto --------------------------------------------------------------
    counts = {c: max(2, int(round((per_class - n_val) * 0.1 ** (i / 9)))) for i, c in enumerate(CLASSES)}
    lt_train = []
    for c in CLASSES:
        lt_train += [it for it in train_items if it[1] == c][: counts[c]]
    lt_val = []
    for c in CLASSES:  # validation follows the same long tail (as it would in practice)
        lt_val += [it for it in val_items if it[1] == c][: max(2, counts[c] // 9)]
    ws_lt = make_workspace(tmp / "lt", lt_train, lt_val, test_items)
    lt = {}
    for mode in ("none", "auto"):
        r = train.run(cfg(ws_lt.root, balance=mode, run_name=f"lt-{mode}"))
        lt[mode] = test_metrics(r.run_dir)
        lt[mode]["run"] = r.run_dir.name  # type: ignore[assignment]
        if mode == "none":
            from picsift.inference import Predictor

            p = Predictor.from_run(r.run_dir)
            val = split_data(r.run_dir, "val")
            scales, before, after = fit_class_scales(p.predict_arrays(val.x), val.y, "macro_f1")
            test = split_data(r.run_dir, "test")
            from sklearn.metrics import f1_score

            pred = (p.predict_arrays(test.x) * scales).argmax(1)
            lt["none_thresholds"] = {
                "macro_f1": float(f1_score(test.y, pred, average="macro")),
                "val_macro_f1_before": before,
                "val_macro_f1_after": after,
            }
    results["long_tail"] = {"train_counts": counts, **lt}

    # ---- 4. unknown rejection with 2 held-out classes -----------------------------------------------------
    held = ["cat", "truck"]
    known = [c for c in CLASSES if c not in held]
    ws_u = make_workspace(
        tmp / "unknown",
        [it for it in train_items if it[1] in known],
        [it for it in val_items if it[1] in known],
        [it for it in test_items if it[1] in known],
    )
    r = train.run(cfg(ws_u.root, run_name="known8"))
    calibrate(r.run_dir)
    info = fit_unknown(r.run_dir)
    det = load_detector(r.run_dir)
    from picsift.data.images import load_rgb, resize_square

    size = det.predictor.data_config.storage_size
    x_unknown = np.stack([resize_square(load_rgb(p), size) for p, c in test_items if c in held])
    x_known = split_data(r.run_dir, "test").x
    ev = evaluate_unknowns(det, x_known, x_unknown)
    results["unknown"] = {"held_out": held, "fit": info, **ev}

    out = {
        "benchmark": "improve_bench",
        "quick": quick,
        "command": "python bench/improve_bench.py" + (" --quick" if quick else ""),
        "dataset": "../shared/datasets/cifar10 (JPEG re-encoding)",
        "budget": {
            "train_pool": len(pool),
            "train": len(train_items),
            "val": len(val_items),
            "test": len(test_items),
            "epochs": epochs,
            "model": "fastcnn",
            "model_params": params,
            "tune_trials": trials,
            "seeds": [0, 1, 2],
            "threads": args.threads,
        },
        "machine": machine(),
        "seconds": timings,
        "results": results,
    }
    dest = results_path("improve_bench", quick)
    write_json(dest, out, indent=2, default=float)
    a = results["accuracy"]

    def spread(values: list[float]) -> str:
        return f"median {np.median(values):.4f} (min {min(values):.4f}, max {max(values):.4f}, n={len(values)})"

    tta_gain = [s["tta"]["accuracy"] - s["plain"]["accuracy"] for s in per_seed]
    ece_pairs = [(s["ece_before"], s["ece_after"]) for s in per_seed]
    rows = [
        ("single run (seed 0)", a["single"]["accuracy"], a["single"]["macro_f1"], ""),  # type: ignore[index]
        (f"+ TTA {a['tta_views']}", a["tta"]["accuracy"], a["tta"]["macro_f1"], ""),  # type: ignore[index]
        ("3-seed mean ensemble", a["ensemble_3"]["accuracy"], a["ensemble_3"]["macro_f1"], ""),  # type: ignore[index]
        (f"tuned ({trials} trials)", a["tuned"]["accuracy"], a["tuned"]["macro_f1"], ""),  # type: ignore[index]
        ("long-tail r=10, balance none", lt["none"]["accuracy"], lt["none"]["macro_f1"], ""),
        ("long-tail r=10, balance auto", lt["auto"]["accuracy"], lt["auto"]["macro_f1"], ""),
        ("long-tail none + class thresholds", float("nan"), lt["none_thresholds"]["macro_f1"], ""),
    ]
    print(
        f"\nimprove_bench{' --quick' if quick else ''}: CIFAR-10 subset, test n={len(test_items)}, "
        f"fastcnn widths {widths}, {epochs} epochs, seed 0 unless noted"
    )
    print(f"{'setting':40s} {'accuracy':>9s} {'macro-F1':>9s}")
    for name, acc, f1, _ in rows:
        print(f"{name:40s} {acc:9.4f} {f1:9.4f}")
    c = results["calibration"]["test"]  # type: ignore[index]
    print(
        f"{'calibration (test) ECE':40s} {c['ece_before']:9.4f} -> {c['ece_after']:.4f}  "
        f"NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}  T={results['calibration']['temperature']:.3f}"
    )  # type: ignore[index]
    ens_gain = a["ensemble_3"]["accuracy"] - float(np.median(seeds))  # type: ignore[index]
    print(f"single-run accuracy, seeds 0-2: {spread(seeds)}; 3-seed ensemble minus that median {ens_gain:+.4f}")
    print(f"TTA accuracy gain per seed: {spread(tta_gain)}")
    print(f"test ECE per seed before: {spread([b for b, _ in ece_pairs])}")
    print(f"test ECE per seed after:  {spread([x for _, x in ece_pairs])}")
    u = results["unknown"]["auroc"]  # type: ignore[index]
    print("unknown rejection AUROC (cat, truck held out): " + ", ".join(f"{k} {v:.3f}" for k, v in u.items()))
    print(f"wrote {dest.relative_to(REPO)}")


if __name__ == "__main__":
    main()
