"""picsift's pretrained path on a CUDA GPU: embedding throughput per backend, the transfer recipe under a budget
(`auto`, the fast CNN and the plain timm peer of bench/transfer_bench.py, all on the GPU), and the export of each
GPU-trained run by a process that sees no GPU.

    python bench/gpu_bench.py [--datasets DIR] [--budget 1] [--images 4096] [--backbone efficientnet_lite2]
        [--skip-transfer] [--methods auto fast peer] [--defaults-only] [--out FILE]

Embedding: uint8 images at the backbone's storage size (seeded noise: speed does not depend on content) through
picsift's Embedder with each GPU backend ("eager" fp32 NCHW, the plain PyTorch baseline; "channels_last" fp32;
"bf16" autocast + channels_last), batches of 256, warmed up, then interleaved rounds; the rate includes the host to
device copy of the uint8 batch and the copy of the features back. Outputs are compared with eager's (lowest cosine).

Transfer: hymenoptera (train -> val, from DIR/hymenoptera, default ../shared/datasets) with `--device cuda` for every
method, one budget; see bench/transfer_bench.py for what each method is and what the wall time counts.

Export: `picsift export --json` (ONNX, parity-checked) of each run, with CUDA_VISIBLE_DEVICES empty.
Prints a table; writes bench/results/gpu_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import transfer_bench as tb
from benchutil import machine_info, results_path
from picsift.jsonio import write_json

BACKENDS = ("eager", "channels_last", "bf16")


def embedding_rates(
    backbone: str, n: int, rounds: int = 3, batch: int = 256, device: str = "cuda"
) -> list[dict[str, Any]]:
    """Images/s of each GPU backend (median of interleaved rounds) and its lowest cosine to eager's features."""
    from picsift.models.pretrained import create_pretrained_backbone
    from picsift.models.pretrained.embed import embed, make_embedder

    model, dc, _ = create_pretrained_backbone(backbone, num_classes=0)
    x = np.random.default_rng(0).integers(0, 256, (n, dc.storage_size, dc.storage_size, 3), dtype=np.uint8)
    embedders = {b: make_embedder(model, dc, backend=b, device=device) for b in BACKENDS}
    reference = embed(embedders["eager"], x[:batch])
    cosines, rates = {}, {b: [] for b in BACKENDS}
    for b, e in embedders.items():
        out = embed(e, x[:batch])
        num = (out * reference).sum(1)
        cosines[b] = float((num / (np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1))).min())
    for r in range(rounds):
        order = BACKENDS[r % len(BACKENDS) :] + BACKENDS[: r % len(BACKENDS)]
        for b in order:
            if device != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter()
            embed(embedders[b], x, batch_size=batch)
            rates[b].append(n / (time.perf_counter() - t))
    eager = statistics.median(rates["eager"])
    return [
        {
            "backbone": backbone,
            "resolution": dc.input_size,
            "backend": b,
            "images_per_s": statistics.median(rates[b]),
            "speedup_vs_eager": statistics.median(rates[b]) / eager,
            "min_cosine_to_eager": cosines[b],
            "rounds": rates[b],
        }
        for b in BACKENDS
    ]


# (method, transfer model_params): auto as a user runs it, then the probe alone and the CPU's partial fine-tuning
VARIANTS: list[tuple[str, dict[str, Any] | None]] = [
    ("auto", None),
    ("auto", {"finetune": False}),
    ("auto", {"train_stages": 3}),
    ("fast", None),
    ("peer", None),
]


def transfer_rows(
    budget: float,
    seed: int,
    device: str,
    on_row: Callable[[list[dict[str, Any]]], None] | None = None,
    variants: list[tuple[str, dict[str, Any] | None]] = VARIANTS,
) -> tuple[list[dict[str, Any]], Path]:
    tmp = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    train_files, scored_files = tb.dataset("hymenoptera", 0, False)
    ws = tb.make_workspace(tmp / "hymenoptera", train_files)
    tb.warm_decoded_cache(ws, [256, 292, 48])
    peer_train, peer_scored = tb.decode(train_files, 256)[:2], tb.decode(scored_files, 256)[:2]
    rows: list[dict[str, Any]] = []
    for method, params in variants:
        if method == "peer":
            chosen = next((r["model"] for r in rows if r["method"] == "auto"), "efficientnet_lite0")
            row = tb.run_peer(peer_train, peer_scored, budget, seed, chosen, device)
        else:
            model = "auto" if method == "auto" else "fastcnn"
            row = tb.run_picsift(ws, model, budget, seed, scored_files, device, params)
        row.update(dataset="hymenoptera", budget_min=budget, method=method, seed=seed, device=device)
        rows.append(row)
        if on_row:
            on_row(rows)
        print(f"hymenoptera {budget:g} min {method} {params or ''}: {row['accuracy']:.4f} in {row['wall_s']:.1f} s")
        details = ("model", "resolution", "kept", "probe", "finetune", "val_history", "steps", "epochs")
        print("   ", {k: row.get(k) for k in details if row.get(k) is not None}, flush=True)
    return rows, ws


def cpu_exports(ws: Path) -> list[dict[str, Any]]:
    """Each GPU-trained run exported (ONNX, parity-checked) by `picsift export --json` in a process that sees no
    GPU, as on the machine a user deploys to."""
    out = []
    for run in sorted(p for p in (ws / "runs").iterdir() if (p / "run.json").exists()):
        cmd = [sys.executable, "-m", "picsift", "export", "--workspace", str(ws), "--run", str(run), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        row: dict[str, Any] = {"run": run.name, "rc": proc.returncode}
        try:
            row["export"] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            row["tail"] = (proc.stdout + proc.stderr)[-2000:]
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=tb.DATASETS)
    ap.add_argument("--budget", type=float, default=1.0, help="minutes per transfer run")
    ap.add_argument("--images", type=int, default=4096, help="images per embedding round")
    ap.add_argument("--backbone", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    ap.add_argument("--skip-transfer", action="store_true")
    ap.add_argument("--methods", nargs="+", default=["auto", "fast", "peer"], help="transfer methods to run")
    ap.add_argument("--defaults-only", action="store_true", help="auto as a user runs it, without the param variants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only for a smoke run of this script")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="default bench/results/gpu_bench.json")
    args = ap.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        sys.exit("gpu_bench needs a CUDA GPU")
    out = args.out or results_path("gpu_bench", False)
    tb.DATASETS = args.datasets.resolve()
    report: dict[str, Any] = {
        "benchmark": "gpu_bench",
        "command": "python " + shlex.join(["bench/gpu_bench.py", *sys.argv[1:]]),
        "machine": {
            **machine_info(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
        },
        "embedding": [],
    }
    from picsift.models.pretrained.provider import available_pretrained

    installed = {w.name for w in available_pretrained()}
    for name in args.backbone:
        if name in installed:
            report["embedding"] += embedding_rates(name, args.images, args.rounds, device=args.device)
            write_json(out, report, indent=2, default=str)
    print(f"{'backbone':<20} {'px':>4} {'backend':<14} {'images/s':>9} {'vs eager':>8} {'cos':>7}")
    for r in report["embedding"]:
        print(
            f"{r['backbone']:<20} {r['resolution']:>4} {r['backend']:<14} {r['images_per_s']:>9.0f} "
            f"{r['speedup_vs_eager']:>7.2f}x {r['min_cosine_to_eager']:>7.4f}",
            flush=True,
        )
    if not args.skip_transfer:

        def save(rows: list[dict[str, Any]]) -> None:
            report["transfer"] = rows
            write_json(out, report, indent=2, default=str)

        variants = [(m, p) for m, p in VARIANTS if m in args.methods and not (args.defaults_only and p)]
        report["transfer"], ws = transfer_rows(args.budget, args.seed, args.device, save, variants)
        write_json(out, report, indent=2, default=str)
        report["cpu_exports"] = cpu_exports(ws)
        for r in report["cpu_exports"]:
            print("export on a CPU-only process:", r["run"], "rc", r["rc"], r.get("export") or r.get("tail"))
    write_json(out, report, indent=2, default=str)
    print(f"written {out}")


if __name__ == "__main__":
    main()
