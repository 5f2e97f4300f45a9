"""CIFAR-10 under a wall-clock budget: picsift's default (fastcnn) vs a standard ResNet-18 recipe.

    python bench/train_cifar10.py --budget 2 5 [--runs 1] [--seed 0] [--device cpu] [--quick] [--data DIR] [--warmup]
        [--only picsift|peer] [--params '{"prune": 0}'] [--batch-size N] [--label-smoothing X] [--save-models DIR] [--out FILE]

Data: the JPEG copy in ../shared/datasets/cifar10 (50,000 train / 10,000 test), decoded once into a
uint8 array cached in bench/work/. For each budget and run, picsift and the peer train in turn
(A B A B) with the same thread policy; both are monitored on 2,000 test images after each epoch
(time to 91%), then scored on the full test split (picsift also with its 6-view TTA). Achieved
training GFLOP/s is set against ceilings measured in the same process. Prints a table; writes
bench/results/train_cifar10.json.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchutil import results_path
from picsift.config import TrainConfig
from picsift.device import autocast, select_device
from picsift.jsonio import write_json
from picsift.models.registry import create_model, get_spec
from picsift.train.data import TrainData
from picsift.train.fast import fit_fast
from picsift.train.fast.evaluate import logits_for, to_input
from picsift.train.fast.runtime import thread_scope

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "cifar10"
WORK = REPO / "bench" / "work"
TARGET = 0.91


def load_cifar(root: Path = DATA) -> dict[str, np.ndarray]:
    """The JPEG copy under `root` (train/<class>/*.jpg, test/<class>/*.jpg) as uint8 arrays, cached in WORK."""
    root = root.resolve()
    tag = "" if root == DATA.resolve() else "-" + hashlib.sha1(str(root).encode()).hexdigest()[:8]
    cache = WORK / f"cifar10-32{tag}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    from PIL import Image

    if not (root / "train").is_dir():
        sys.exit(f"CIFAR-10 JPEG copy not found at {root} (expected train/<class>/*.jpg and test/<class>/*.jpg)")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    out: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split in ("train", "test"):
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for f in sorted((root / split / c).glob("*.jpg")):
                with Image.open(f) as im:
                    xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
                ys.append(ci)
        out[f"x_{split}"], out[f"y_{split}"] = np.stack(xs), np.array(ys, dtype=np.int64)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)  # type: ignore[arg-type]
    return out


def ceilings(device: torch.device) -> dict[str, float]:
    """Measured GFLOP/s: bf16 and fp32 matmul, fp32 and bf16 conv forward (channels_last)."""
    res: dict[str, float] = {}

    def rate(fn: Any, flops: float, reps: int = 3) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return flops * reps / (time.perf_counter() - t) / 1e9

    for dt in (torch.float32, torch.bfloat16):
        a = torch.randn(1024, 1024, device=device, dtype=dt)
        res[f"matmul_{str(dt)[6:]}"] = rate(lambda a=a: a @ a, 2 * 1024**3)
        x = torch.randn(64, 128, 16, 16, device=device, dtype=dt).contiguous(memory_format=torch.channels_last)
        conv = nn.Conv2d(128, 128, 3, padding=1, bias=False).to(device, dt).to(memory_format=torch.channels_last)
        with torch.no_grad():
            res[f"conv_{str(dt)[6:]}"] = rate(lambda x=x, conv=conv: conv(x), 2 * 64 * 16 * 16 * 128 * 128 * 9)
    return res


def train_flops_per_image(model: nn.Module, size: int, device: torch.device) -> float:
    x = torch.randn(8, 3, size, size, device=device)
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 8


def epoch_rows_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    reached = next((h["elapsed_s"] for h in history if h.get("val_acc", 0) >= TARGET), None)
    return {"epochs": len(history), "time_to_91_s": reached, "history": history}


def run_picsift(
    data: dict[str, np.ndarray],
    budget: float,
    seed: int,
    device: torch.device,
    params: dict[str, Any] | None = None,
    batch_size: int | None = None,
    label_smoothing: float | None = None,
    save_dir: Path | None = None,
) -> dict[str, Any]:
    """picsift's default under `budget` minutes; `params` (fastcnn recipe options), `batch_size` and
    `label_smoothing` are for ablations (--params, --batch-size, --label-smoothing)."""
    spec = get_spec("fastcnn")
    dc = spec.data_config.with_size(32)
    td = TrainData(
        classes=[str(c) for c in data["classes"]],
        data_config=dc,
        x_train=data["x_train"],
        y_train=data["y_train"],
        x_val=data["x_mon"],
        y_val=data["y_mon"],
    )
    cfg = TrainConfig(
        time_budget_min=budget,
        seed=seed,
        device=str(device),
        model_params=params or {},
        batch_size=batch_size,
        label_smoothing=label_smoothing,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        trained = fit_fast(spec, td, cfg, device, rows.append, Path(tmp))
    if save_dir is not None:  # for looking at the model afterwards (test-time augmentation variants, errors)
        save_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"state_dict": trained.model.state_dict(), "model_kwargs": trained.model_kwargs},
            save_dir / f"fastcnn-{budget:g}min-seed{seed}.pt",
        )
    model = trained.model.to(device)
    with thread_scope(device):
        if data["x_mon"] is data["x_test"]:  # the last epoch's validation pass already scored the final weights
            acc = rows[-1]["val_acc"]
        else:
            logits = logits_for(model, data["x_test"], dc, device)
            acc = float((logits.argmax(1).numpy() == data["y_test"]).mean())
        t = time.perf_counter()
        tta_logits = logits_for(model, data["x_test"], dc, device, tta=True)
        tta_s = time.perf_counter() - t
    tta_acc = float((tta_logits.argmax(1).numpy() == data["y_test"]).mean())
    fresh = create_model("fastcnn", len(td.classes), **trained.model_kwargs).to(device)
    images = sum(h["images"] for h in rows)
    train_s = sum(h["train_s"] for h in rows)
    low = trained.extra["low_res"]  # progressive resizing: part of the images ran at smaller sizes
    total_flops = train_flops_per_image(fresh, 32, device) * (images - sum(low["images"].values()))
    for size, count in low["images"].items():
        total_flops += train_flops_per_image(fresh, int(size), device) * count
    return {
        "model": "picsift fastcnn",
        "budget_min": budget,
        "seed": seed,
        "test_acc": acc,
        "test_acc_tta": tta_acc,
        "tta_eval_s": tta_s,
        "elapsed_s": trained.extra["elapsed_s"],
        "train_s": train_s,
        "images": images,
        "train_gflops": total_flops / 1e9,
        "gflop_per_s": total_flops / max(train_s, 1e-9) / 1e9,
        "low_res": low,
        "prune": trained.extra.get("prune"),  # image-epochs that data pruning left out
        "freeze": trained.extra.get("freeze"),  # progressive freezing: stages and blocks frozen at the end
        "model_kwargs": trained.model_kwargs,
        "batch_size": trained.extra["batch_size"],
        "label_smoothing": trained.extra["label_smoothing"],
        **epoch_rows_summary(rows),
    }


def peer_model() -> nn.Module:
    from torchvision.models import resnet18

    m = resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()  # type: ignore[assignment]
    return m


def run_peer(data: dict[str, np.ndarray], budget: float, seed: int, device: torch.device) -> dict[str, Any]:
    """torchvision ResNet-18 (3x3 stem, no max-pool), SGD nesterov 0.9, lr 0.1, wd 5e-4, cosine over the
    budget, flip + 4 px crop, batch 128, bf16 autocast, channels_last; batches built as whole tensors too."""
    t_start = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dc = get_spec("fastcnn").data_config.with_size(32)
    with thread_scope(device):
        model = peer_model().to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        crit = nn.CrossEntropyLoss()
        x_all = torch.from_numpy(data["x_train"]).permute(0, 3, 1, 2)
        x_pad = nn.functional.pad(x_all, (4, 4, 4, 4))
        y_all = torch.from_numpy(data["y_train"])
        n, bs, budget_s = len(y_all), 128, budget * 60
        ar = torch.arange(32)
        rows: list[dict[str, Any]] = []
        reserve = 0.0
        done, epoch = False, 0
        while not done:
            model.train()
            te, seen = time.perf_counter(), 0
            order = torch.randperm(n, generator=g)
            for i in range(n // bs):
                p = (time.perf_counter() - t_start) / max(1e-3, budget_s - reserve)
                if p >= 1:
                    done = True
                    break
                for grp in opt.param_groups:
                    grp["lr"] = 0.1 * 0.5 * (1 + math.cos(math.pi * p))
                idx = order[i * bs : (i + 1) * bs]
                sh = torch.randint(0, 9, (bs, 2), generator=g)
                xb = x_pad[idx]
                rows_i = (sh[:, :1] + ar).view(bs, 1, 32, 1).expand(bs, 3, 32, 40)
                xb = torch.gather(xb, 2, rows_i)
                cols_i = (sh[:, 1:] + ar).view(bs, 1, 1, 32).expand(bs, 3, 32, 32)
                xb = torch.gather(xb, 3, cols_i)
                flip = (torch.rand(bs, generator=g) < 0.5).view(-1, 1, 1, 1)
                xb = torch.where(flip, xb.flip(-1), xb)
                xin = to_input(xb.to(device), dc)
                yb = y_all[idx].to(device)
                with autocast(device, True):
                    loss = crit(model(xin).float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += bs
            train_s = time.perf_counter() - te
            tv = time.perf_counter()
            mon = logits_for(model, data["x_mon"], dc, device)
            reserve = (time.perf_counter() - tv) * 1.2
            epoch += 1
            rows.append(
                {
                    "epoch": epoch,
                    "val_acc": float((mon.argmax(1).numpy() == data["y_mon"]).mean()),
                    "train_s": train_s,
                    "images": seen,
                    "elapsed_s": time.perf_counter() - t_start,
                }
            )
        elapsed = time.perf_counter() - t_start  # training and monitoring; the final scoring is outside
        if data["x_mon"] is data["x_test"]:
            acc = rows[-1]["val_acc"]
        else:
            logits = logits_for(model, data["x_test"], dc, device)
            acc = float((logits.argmax(1).numpy() == data["y_test"]).mean())
    flops = train_flops_per_image(peer_model().to(device), 32, device)
    images = sum(h["images"] for h in rows)
    train_s = sum(h["train_s"] for h in rows)
    return {
        "model": "peer resnet18",
        "budget_min": budget,
        "seed": seed,
        "test_acc": acc,
        "elapsed_s": elapsed,
        "train_s": train_s,
        "images": images,
        "train_gflops": flops * images / 1e9,
        "gflop_per_s": flops * images / max(train_s, 1e-9) / 1e9,
        **epoch_rows_summary(rows),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
    }


def fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, nargs="+", default=[2.0, 5.0], help="minutes (several allowed)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="the first run's seed (run r uses seed + r)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="5,000 train / 1,000 test images, 0.25-minute budget")
    ap.add_argument("--only", choices=["both", "picsift", "peer"], default="both")
    ap.add_argument(
        "--test-images",
        type=int,
        default=10_000,
        help="score on a fixed random subset of the test split (a busy machine cannot afford 10,000 views)",
    )
    ap.add_argument("--params", default="{}", help="fastcnn model_params as JSON, e.g. '{\"resize\": [[0.5, 24]]}'")
    ap.add_argument("--batch-size", type=int, default=None, help="picsift's batch size (default: the recipe's)")
    ap.add_argument("--label-smoothing", type=float, default=None, help="picsift's label smoothing (default: 0.2)")
    ap.add_argument("--save-models", type=Path, default=None, help="folder to save picsift's trained models in")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/train_cifar10[_quick].json")
    ap.add_argument("--data", type=Path, default=DATA, help="the CIFAR-10 JPEG folder (train/ and test/ inside)")
    ap.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train picsift once under the longest budget, untimed and discarded, before the measured runs (CUDA "
        "context, kernel loading, both input sizes of progressive resizing), as GPU speed records are timed; "
        "default: on for CUDA",
    )
    args = ap.parse_args(argv)
    args.out = args.out or results_path("train_cifar10", args.quick)
    device = select_device(args.device)
    data = load_cifar(args.data)
    rng = np.random.default_rng(0)
    if args.quick:
        i, j = rng.permutation(50_000)[:5000], rng.permutation(10_000)[:1000]
        data = {
            **data,
            "x_train": data["x_train"][i],
            "y_train": data["y_train"][i],
            "x_test": data["x_test"][j],
            "y_test": data["y_test"][j],
        }
        args.budget = [0.25]
    if args.test_images < len(data["y_test"]):
        keep = np.sort(rng.permutation(len(data["y_test"]))[: args.test_images])
        data["x_test"], data["y_test"] = data["x_test"][keep], data["y_test"][keep]
    if len(data["y_test"]) <= 2000:  # monitor on the scored set itself: no second pass needed
        data["x_mon"], data["y_mon"] = data["x_test"], data["y_test"]
    else:
        mon = rng.permutation(len(data["y_test"]))[:2000]
        data["x_mon"], data["y_mon"] = data["x_test"][mon], data["y_test"][mon]
    with thread_scope(device) as threads:
        ceil = ceilings(device)
    info = {
        **machine(),
        "threads": threads,
        "device": str(device),
        "ceilings_gflops": ceil,
        "command": shlex.join(["python", "bench/train_cifar10.py", *(sys.argv[1:] if argv is None else argv)]),
    }
    print(f"ceilings (GFLOP/s, {threads} thread(s)): " + ", ".join(f"{k} {v:.0f}" for k, v in ceil.items()))
    results: list[dict[str, Any]] = []
    picsift = functools.partial(
        run_picsift,
        params=json.loads(args.params),
        batch_size=args.batch_size,
        label_smoothing=args.label_smoothing,
        save_dir=args.save_models,
    )
    if args.warmup or (args.warmup is None and device.type == "cuda"):
        t = time.perf_counter()
        picsift(data, max(args.budget), args.seed, device)
        info["warmup_s"] = time.perf_counter() - t
        print(f"warm-up run (discarded): {info['warmup_s']:.1f}s", flush=True)
    for budget in args.budget:
        for r in range(args.seed, args.seed + args.runs):
            for name, fn in (("picsift", picsift), ("peer", run_peer)):
                if args.only not in ("both", name):
                    continue
                res = fn(data, budget, r, device)
                res["loadavg_after"] = os.getloadavg()
                results.append(res)
                print(
                    f"  {res['model']:16s} budget {budget:g} min run {r}: test acc {res['test_acc']:.4f}"
                    f" (tta {fmt(res.get('test_acc_tta'))}), {res['epochs']} epochs, {res['elapsed_s']:.0f}s",
                    flush=True,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                write_json(args.out, {"machine": info, "results": results}, indent=1, default=str)
    print()
    print("| budget | model | test acc | test acc (TTA) | epochs | time to 91% (s) | GFLOP/s | ratio vs peer |")
    print("|---|---|---|---|---|---|---|---|")
    for budget in args.budget:
        for model in ("picsift fastcnn", "peer resnet18"):
            rs = [x for x in results if x["budget_min"] == budget and x["model"] == model]
            if not rs:
                continue
            accs = [x["test_acc"] for x in rs]
            tta = [x["test_acc_tta"] for x in rs if "test_acc_tta" in x]
            peer = [x["test_acc"] for x in results if x["budget_min"] == budget and x["model"] == "peer resnet18"]
            # Plain accuracy against plain accuracy: the peer recipe has no TTA.
            ratio = f"{np.median(accs) / np.median(peer):.2f}x acc" if peer and model != "peer resnet18" else ""
            spread = f" ({min(accs):.4f}-{max(accs):.4f})" if len(accs) > 1 else ""
            tta_spread = f" ({min(tta):.4f}-{max(tta):.4f})" if len(tta) > 1 else ""
            reach = [x["time_to_91_s"] for x in rs if x["time_to_91_s"] is not None]
            print(
                f"| {budget:g} min | {model} | {np.median(accs):.4f}{spread} | "
                f"{fmt(float(np.median(tta)) if tta else None)}{tta_spread} | {np.median([x['epochs'] for x in rs]):g} | "
                f"{fmt(min(reach) if reach else None, '.0f')} | {np.median([x['gflop_per_s'] for x in rs]):.0f} | "
                f"{ratio} |"
            )
    print(
        f"\nruns: {args.runs} per budget, seeds {args.seed}..{args.seed + args.runs - 1}; {info['cpu']}, {threads} thread(s); "
        f"ceilings {', '.join(f'{k} {v:.0f}' for k, v in ceil.items())} GFLOP/s"
    )


if __name__ == "__main__":
    main()
