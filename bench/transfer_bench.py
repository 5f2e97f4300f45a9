"""Transfer learning under a wall-clock budget: picsift's `auto`, the fast CNN alone, and a plain timm fine-tuning peer.

    python bench/transfer_bench.py [--budgets 1 2 5] [--datasets hymenoptera cifar1000 cifar5000] [--methods auto fast peer]
        [--test-images 2000] [--seed 0] [--quick] [--out FILE]

Data (../shared/datasets): hymenoptera, trained on its 245 `train` photos and scored on its 153 `val` photos;
CIFAR-10 subsets of the first 1,000 or 5,000 training images (100 or 500 per class, sorted file names), scored on a
fixed subset of the test images (the first `--test-images` / 10 per class, default 2,000; 10000 for all). The
scored images never enter picsift's workspace: picsift holds out 10% of the training images as its own validation
split (for the probe's C, the kept epoch and the temperature) and is scored through `Predictor.from_run`, as
`picsift predict` would. Every method gets the same budget (`--time-budget` for picsift).

- auto: `picsift train` with the default `--model auto`;
- fast: `picsift train --model fastcnn`;
- peer: a plain timm fine-tuning script written here: the same ImageNet weights as auto's choice in the same cell
  (Lite0 when auto did not run or chose the fast CNN; `--peer-backbone` sets it), through the same provider, the whole network trained with AdamW (lr 3e-4, weight decay 0.05, label smoothing 0.1), cosine
  schedule over the budget, random resized crops and flips at 224 px, batch 32, BatchNorm in train mode, bf16
  autocast and channels_last as picsift uses, the same thread count; it trains on all training images for the whole
  budget and is scored once at the end, outside the clock (as picsift's scoring is).

Wall time: the whole training call (`picsift.api.train_model`, what `picsift train` runs, so auto's choice, loading, embedding, the probe,
fine-tuning and the calibration pass all count); images are decoded into picsift's cache (and for the peer into
an array) before the clock starts, and picsift's feature cache is emptied before each run, so no run reuses
another's embeddings. One run per cell (seed 0): the CPU is shared, so read the spread of the fast CNN's rows
(bench/results/train_cifar10*.json) as the noise floor. Prints a table; writes bench/results/transfer_bench.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchutil import machine_info, results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


# ---- data ------------------------------------------------------------------------------------------


def _files(root: Path, per_class: int | None) -> dict[str, list[Path]]:
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(
            p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and not p.name.startswith(".")
        )
        out[d.name] = files[:per_class] if per_class else files
    return out


def dataset(name: str, test_images: int, quick: bool) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(train files by class, scored files by class)."""
    if name == "hymenoptera":
        root = DATASETS / "hymenoptera"
        n = 10 if quick else None
        return _files(root / "train", n), _files(root / "val", n)
    per_class = int(name.removeprefix("cifar")) // 10
    root = DATASETS / "cifar10"
    return _files(root / "train", per_class), _files(root / "test", test_images // 10)


def make_workspace(root: Path, train: dict[str, list[Path]]) -> Path:
    """A picsift workspace holding only the training images (linked), labelled by folder, split train."""
    from picsift.api import import_images

    src = root / "train"
    for c, files in train.items():
        (src / c).mkdir(parents=True)
        for f in files:
            (src / c / f.name).symlink_to(f)
    import_images(src, workspace=root / "ws", split="train")
    return root / "ws"


def decode(files: dict[str, list[Path]], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from picsift.data.images import load_rgb, resize_square

    classes = sorted(files)
    x, y = [], []
    for k, c in enumerate(classes):
        for f in files[c]:
            x.append(resize_square(load_rgb(f), size))
            y.append(k)
    return np.stack(x), np.array(y), classes


# ---- picsift -----------------------------------------------------------------------------------------


def warm_decoded_cache(ws: Path, sizes: list[int]) -> None:
    from picsift.data.cache import DecodedCache
    from picsift.store import Workspace

    w = Workspace.open(ws)
    rows = w.catalog.images()
    for s in sizes:
        DecodedCache(w.cache_dir, s).get_many([(r.sha256, r.path) for r in rows])


def run_picsift(
    ws: Path,
    model: str,
    budget_min: float,
    seed: int,
    scored: dict[str, list[Path]],
    device: str = "cpu",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from picsift.api import train_model
    from picsift.inference import Predictor
    from picsift.store import Workspace

    shutil.rmtree(Workspace.open(ws).cache_dir / "features", ignore_errors=True)
    t0 = time.perf_counter()
    # What `picsift train` runs (api.train_model: training, then the calibration pass)
    result = train_model(
        workspace=ws, model=model, time_budget_min=budget_min, seed=seed, device=device, model_params=params
    )
    wall = time.perf_counter() - t0
    predictor = Predictor.from_run(result.run_dir, device=device)
    t1 = time.perf_counter()
    x, y, classes = decode(scored, predictor.data_config.storage_size)
    probs = np.concatenate([predictor.predict_arrays(x[i : i + 128]) for i in range(0, len(x), 128)])
    index = {c: i for i, c in enumerate(predictor.classes)}
    truth = np.array([index[classes[k]] for k in y])
    summary = json.loads((result.run_dir / "run.json").read_text())
    trainer = summary.get("trainer") or {}
    return {
        "model": result.model,
        "accuracy": float((probs.argmax(1) == truth).mean()),
        "n_scored": int(len(truth)),
        "wall_s": wall,
        "score_s": time.perf_counter() - t1,
        "val_acc": result.val_acc,
        "auto": summary.get("auto", {}) and summary["auto"]["message"],
        "resolution": trainer.get("resolution") or predictor.data_config.input_size,
        "kept": trainer.get("kept"),
        "probe": (trainer.get("phases") or {}).get("probe"),
        "finetune": (trainer.get("phases") or {}).get("finetune"),
        "embed": (trainer.get("phases") or {}).get("embed"),
        "calibration": summary.get("calibration"),
        "epochs": len(result.history),
        "val_history": [h.get("val_acc") for h in result.history],
        "params": params,
    }


# ---- the peer: plain timm fine-tuning ----------------------------------------------------------------


def run_peer(
    train: tuple[np.ndarray, np.ndarray],
    scored: tuple[np.ndarray, np.ndarray],
    budget_min: float,
    seed: int,
    backbone: str = "efficientnet_lite0",
    device_name: str = "cpu",
) -> dict[str, Any]:
    from torchvision.transforms import v2

    from picsift.device import autocast
    from picsift.models.pretrained import create_pretrained_backbone
    from picsift.train.fast.runtime import thread_scope

    torch.manual_seed(seed)
    budget = budget_min * 60
    device = torch.device(device_name)
    with thread_scope(device) as threads:
        t0 = time.perf_counter()
        x, y = train
        xs, ys = scored
        k = int(y.max()) + 1
        model, dc, found = create_pretrained_backbone(backbone, num_classes=k)
        model = model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(dc.mean), list(dc.std))]
        aug = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(), *norm])
        ev = v2.Compose([v2.CenterCrop(224), *norm])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)
        xst = torch.from_numpy(xs).permute(0, 3, 1, 2)
        gen = torch.Generator().manual_seed(seed)
        steps = epochs = 0
        step_s = 0.0
        start = time.perf_counter()

        done = False
        while not done:
            epochs += 1
            model.train()
            for idx in torch.randperm(len(xt), generator=gen).split(32):
                now = time.perf_counter()
                if now - t0 + step_s >= budget:
                    done = True
                    break
                p = min(1.0, (now - start) / max(1e-9, budget - (start - t0)))
                for g in opt.param_groups:
                    g["lr"] = 3e-4 * 0.5 * (1 + math.cos(math.pi * p))
                xb = torch.stack([aug(xt[i].to(device)) for i in idx]).contiguous(memory_format=torch.channels_last)
                with autocast(device):
                    out = model(xb)
                loss = loss_fn(out.float(), torch.from_numpy(y[idx.numpy()]).to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
                step_s = time.perf_counter() - now
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        model.eval()
        preds = []
        with torch.no_grad():
            for i in range(0, len(xst), 64):
                xb = torch.stack([ev(img.to(device)) for img in xst[i : i + 64]]).contiguous(
                    memory_format=torch.channels_last
                )
                with autocast(device):
                    preds.append(model(xb).float().argmax(1).cpu())
        score_s = time.perf_counter() - t1
    acc = float((torch.cat(preds).numpy() == ys).mean())
    return {
        "model": f"{backbone} fine-tuned (timm, whole network)",
        "accuracy": acc,
        "n_scored": int(len(ys)),
        "wall_s": wall,
        "score_s": score_s,
        "steps": steps,
        "epochs": epochs,
        "threads": threads,
        "weights": found.source,
    }


# ---- main ------------------------------------------------------------------------------------------


def write_report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    report = {
        "benchmark": "transfer_bench",
        "command": "python " + shlex.join(["bench/transfer_bench.py", *sys.argv[1:]]),
        "scored": "hymenoptera: its 153 val photos; cifar: the first test_images/10 test images per class",
        "test_images": args.test_images,
        "machine": machine_info(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report, indent=2, default=str)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[1.0, 2.0, 5.0], help="minutes")
    ap.add_argument("--datasets", nargs="+", default=["hymenoptera", "cifar1000", "cifar5000"])
    ap.add_argument("--methods", nargs="+", default=["auto", "fast", "peer"])
    ap.add_argument("--test-images", type=int, default=2000, help="CIFAR-10 test images scored (10000: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--peer-backbone", default=None, help="the peer's backbone (default: the one auto chose in the same cell)"
    )
    ap.add_argument("--device", default="cpu", help="cpu (the targets' machine), cuda, ...")
    ap.add_argument("--quick", action="store_true", help="hymenoptera subset, 0.1-minute budget (under a minute)")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/transfer_bench[_quick].json")
    args = ap.parse_args()
    if args.quick:
        args.budgets, args.datasets = [0.1], ["hymenoptera"]
    args.out = args.out or results_path("transfer_bench", args.quick)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as tmp:
        for name in args.datasets:
            train_files, scored_files = dataset(name, args.test_images, args.quick)
            ws = make_workspace(Path(tmp) / name, train_files)
            # storage sizes: lite0 at 224 px and the fast CNN's 48 (photos); lite0 at 128/96/64 and 32 (CIFAR)
            warm_decoded_cache(ws, [256, 48] if name == "hymenoptera" else [146, 110, 73, 32])
            peer_train = decode(train_files, 256)[:2]
            peer_scored = decode(scored_files, 256)[:2]
            for budget in args.budgets:
                for method in args.methods:
                    t = time.perf_counter()
                    if method == "peer":
                        backbone = args.peer_backbone or next(
                            (r["model"] for r in rows[::-1] if r["method"] == "auto" and r["dataset"] == name
                             and r["budget_min"] == budget and r["model"].startswith("efficientnet")),
                            "efficientnet_lite0",
                        )  # fmt: skip
                        row = run_peer(peer_train, peer_scored, budget, args.seed, backbone, args.device)
                    else:
                        model = "auto" if method == "auto" else "fastcnn"
                        row = run_picsift(ws, model, budget, args.seed, scored_files, args.device)
                    row.update(dataset=name, budget_min=budget, method=method, seed=args.seed, device=args.device)
                    rows.append(row)
                    write_report(args, rows)  # after every cell: a long run cut short keeps what it measured
                    print(
                        f"{name} {budget:g} min {method}: {row['accuracy']:.4f} in {row['wall_s']:.0f} s "
                        f"({time.perf_counter() - t:.0f} s with scoring)",
                        flush=True,
                    )
    write_report(args, rows)
    print(f"\n{'dataset':<12} {'budget':>6} {'method':<6} {'accuracy':>8} {'wall s':>7}  model / choice")
    for r in rows:
        what = r.get("auto") or r["model"]
        print(
            f"{r['dataset']:<12} {r['budget_min']:>6g} {r['method']:<6} {r['accuracy']:>8.4f} {r['wall_s']:>7.0f}  {what}"
        )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
