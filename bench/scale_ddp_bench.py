"""One process against several (torchrun, gloo on the CPU) for the same time budget on the same data.

    python bench/scale_ddp_bench.py [--budget 2] [--procs 1 2] [--runs 1] [--per-class 500] [--test-per-class 200]
        [--model fastcnn] [--seed 0] [--quick] [--out FILE]

Data: a CIFAR-10 subset from ../shared/datasets/cifar10 (`--per-class` training images per class from train/,
`--test-per-class` test images per class from test/), imported once into a workspace under bench/work/; `--quick`
uses scikit-learn's digits instead (1,797 images at 16 px, 10 classes, auto splits) and a 0.5-minute budget.

Each run is the command a user types: `picsift train --time-budget B ...` in one process, or
`python -m torch.distributed.run --standalone --nproc_per_node N -m picsift train ...`, in turn (1, 2, 1, 2, ...), then
`picsift evaluate` on the test split. Reported per run: test and validation accuracy, training throughput
(images trained by all processes / rank 0's seconds of training steps), epochs, the batch per process and global,
the budgeted training time and the command's wall time (interpreter and torch start-up, group forming, decoding
through the cache, training, saving). Prints a table; writes bench/results/scale_ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from benchutil import machine_info, results_path  # noqa: E402
from picsift.jsonio import write_json  # noqa: E402

DATA = REPO.parent / "shared" / "datasets" / "cifar10"
WORK = REPO / "bench" / "work" / "scale_ddp"
RESULT = REPO / "bench" / "results" / "scale_ddp.json"


def _env(nproc: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    env["PYTHONPATH"] = str(REPO / "src")
    return env


def _picsift(args: list[str], nproc: int = 1) -> tuple[dict[str, Any], float]:
    """Run `picsift ARGS --json` (under torchrun when nproc > 1); (its JSON, wall seconds)."""
    launcher = [sys.executable, "-m", "picsift"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        launcher += ["-m", "picsift"]
    t0 = time.perf_counter()
    done = subprocess.run([*launcher, *args, "--json"], capture_output=True, text=True, env=_env(nproc))
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {shlex.join([*launcher, *args])}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout), wall


def _link_subset(src: Path, dst: Path, per_class: int) -> None:
    """dst/<class>/ holding symbolic links to the first `per_class` images of each class of src (sorted)."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        out = dst / cls.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.glob("*.jpg"))[:per_class]:
            link = out / f.name
            if not link.exists():
                link.symlink_to(f.resolve())


def _digits(dst: Path) -> None:
    """scikit-learn's digits as 16 px PNGs in folder-per-class layout."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        out = dst / str(label)
        out.mkdir(parents=True, exist_ok=True)
        pixels = (img / 16.0 * 255).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((16, 16), Image.NEAREST).convert("RGB").save(out / f"{i}.png")


def workspace(args: argparse.Namespace) -> Path:
    """The benchmark's workspace, imported once per data choice and reused."""
    tag = "digits" if args.quick else f"cifar10-{args.per_class}-{args.test_per_class}"
    ws = WORK / tag / "ws"
    if (ws / "catalog.sqlite").exists():
        return ws
    images = WORK / tag / "images"
    if args.quick:
        _digits(images / "all")
        _picsift(["import", str(images / "all"), "-w", str(ws), "--seed", str(args.seed)])
        return ws
    if not (DATA / "train").is_dir():
        sys.exit(f"CIFAR-10 JPEG copy not found at {DATA}: use --quick for the digits")
    _link_subset(DATA / "train", images / "train", args.per_class)
    _link_subset(DATA / "test", images / "test", args.test_per_class)
    _picsift(["import", str(images / "train"), "-w", str(ws), "--split", "train"])
    _picsift(["import", str(images / "test"), "-w", str(ws), "--split", "test"])
    return ws


def one_run(ws: Path, nproc: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train with `nproc` processes for the budget, evaluate on the test split; what the run did and scored."""
    train = ["train", "-w", str(ws), "--model", args.model, "--time-budget", str(args.budget)]
    train += ["--seed", str(args.seed), "--device", "cpu", "--no-calibrate", "--name", f"ddp{nproc}"]
    result, wall = _picsift(train, nproc)
    run_dir = Path(result["run_dir"])
    record = json.loads((run_dir / "run.json").read_text())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    images = sum(row.get("images", 0) for row in history)
    step_s = sum(row.get("train_s", row.get("epoch_s", 0.0)) for row in history)
    metrics, _ = _picsift(["evaluate", "-w", str(ws), "--run", result["run_id"], "--device", "cpu"])
    trainer = record.get("trainer", {})
    return {
        "processes": nproc,
        "run_id": result["run_id"],
        "test_acc": metrics["accuracy"],
        "test_images": metrics["n"],
        "val_acc": result["best_val_acc"],
        "images_per_s": images / step_s if step_s else None,
        "images_trained": images,
        "epochs": result["epochs"],
        "steps": trainer.get("steps"),
        "batch_per_process": trainer.get("batch_size"),
        "global_batch": trainer.get("global_batch_size", trainer.get("batch_size")),
        "train_s": result["train_seconds"],
        "wall_s": wall,
        "distributed": record.get("distributed"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'procs':>5} {'test acc':>8} {'val acc':>7} {'img/s':>7} {'images':>8} {'epochs':>6} {'batch':>9}"
    head += f" {'train s':>7} {'wall s':>7}"
    lines = [head]
    for r in rows:
        batch = f"{r['batch_per_process']}x{r['processes']}"
        ips = f"{r['images_per_s']:.0f}" if r["images_per_s"] else "-"
        lines.append(
            f"{r['processes']:>5} {r['test_acc']:>8.4f} {r['val_acc']:>7.4f} {ips:>7} {r['images_trained']:>8} "
            f"{r['epochs']:>6} {batch:>9} {r['train_s']:>7.1f} {r['wall_s']:>7.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=None, help="Minutes per run (default 2; --quick 0.5).")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="Process counts to compare.")
    parser.add_argument("--runs", type=int, default=1, help="Runs per process count, interleaved.")
    parser.add_argument("--per-class", type=int, default=500, help="CIFAR-10 training images per class.")
    parser.add_argument("--test-per-class", type=int, default=200, help="CIFAR-10 test images per class.")
    parser.add_argument("--model", default="fastcnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="scikit-learn's digits, 0.5-minute budget.")
    parser.add_argument("--out", type=Path, default=None, help="results file (default bench/results/scale_ddp.json)")
    args = parser.parse_args()
    if args.budget is None:
        args.budget = 0.5 if args.quick else 2.0
    ws = workspace(args)
    rows = []
    for _ in range(args.runs):
        for nproc in args.procs:
            rows.append(one_run(ws, nproc, args))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    doc = {
        "benchmark": "scale_ddp",
        "command": shlex.join([sys.executable, *sys.argv]),
        "data": "digits (scikit-learn, 16 px)"
        if args.quick
        else f"CIFAR-10 subset: {args.per_class}/class train, {args.test_per_class}/class test",
        "budget_min": args.budget,
        "model": args.model,
        "machine": machine_info(),
        "runs": rows,
    }
    out = args.out or results_path("scale_ddp", args.quick)
    write_json(out, doc)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
