"""Embedding throughput of a pretrained backbone on this CPU: eager fp32 vs channels_last vs bf16 autocast
vs torch.compile vs ONNX Runtime.

    python bench/embed_bench.py [--quick] [--model efficientnet_lite0] [--threads 2] [--rounds 5]

Images are uint8 at the model's storage size (256 px for a 224 px model, the project's cached form),
real hymenoptera photos when ../shared/datasets is present, else seeded noise (speed does not depend on
content). Each backend is built once (its setup time, ONNX export or compile, is reported apart), warmed
up on one batch, then the backends run in interleaved rounds (A B C ... then rotated), so that load from
other processes on a shared machine hits all of them alike; the speed-up is the median over rounds of
each backend's rate divided by eager's rate in the same round. Outputs are compared with eager's
(max |difference| and the lowest cosine similarity). `--quick` (under a minute) leaves out compile
(its first batch alone takes minutes on 2 cores) and runs 2 rounds of 16 images. "onnx-spin" is the
onnx backend with ONNX Runtime's spin-waiting threads (its own default; picsift turns spinning off).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchutil import machine_info, results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
HYMENOPTERA = REPO.parent / "shared" / "datasets" / "hymenoptera"


def load_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, str]:
    files = sorted(HYMENOPTERA.glob("val/*/*.jpg"))
    if len(files) >= n:
        from picsift.data.images import load_rgb, resize_square

        picked = [files[i] for i in np.random.default_rng(seed).choice(len(files), n, replace=False)]
        return np.stack([resize_square(load_rgb(f), size) for f in picked]), "hymenoptera val photos"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), "seeded uniform noise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=None, help="images per round (default 64, quick 16)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 32, quick 16")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, quick 2)")
    ap.add_argument("--backends", default=None, help="comma list (default: all; quick: all but compile)")
    args = ap.parse_args()
    import torch

    from picsift.models.pretrained import EMBED_BACKENDS, Embedder, create_pretrained_backbone, make_embedder

    torch.set_num_threads(args.threads)
    n = args.images or (16 if args.quick else 64)
    batch_size = args.batch_size or (16 if args.quick else 32)
    rounds = args.rounds or (2 if args.quick else 5)
    backends = (
        args.backends.split(",")
        if args.backends
        else [b for b in (*EMBED_BACKENDS, "onnx-spin") if not (args.quick and b == "compile")]
    )
    model, dc, found = create_pretrained_backbone(args.model, num_classes=0)
    images, content = load_images(n, dc.storage_size)

    embedders: dict[str, Any] = {}
    setup: dict[str, float] = {}
    warm: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    for b in backends:
        t = time.perf_counter()
        if b == "onnx-spin":  # ONNX Runtime's idle worker threads spin-wait (picsift's default: they sleep)
            embedders[b] = Embedder(model, dc, backend="onnx", spinning=True)
        else:
            embedders[b] = make_embedder(model, dc, backend=b)
        setup[b] = time.perf_counter() - t
        t = time.perf_counter()
        outputs[b] = embedders[b](images[:batch_size])
        warm[b] = time.perf_counter() - t
        print(f"  {b}: setup {setup[b]:.1f}s, first batch {warm[b]:.1f}s", file=sys.stderr)

    rates: dict[str, list[float]] = {b: [] for b in backends}
    for r in range(rounds):
        order = backends[r % len(backends) :] + backends[: r % len(backends)]
        for b in order:
            t = time.perf_counter()
            for i in range(0, n, batch_size):
                embedders[b](images[i : i + batch_size])
            rates[b].append(n / (time.perf_counter() - t))

    ref = outputs.get("eager")
    rows = []
    for b in backends:
        row: dict[str, Any] = {
            "backend": b,
            "images_per_s_median": round(statistics.median(rates[b]), 1),
            "images_per_s_rounds": [round(x, 1) for x in rates[b]],
            "setup_s": round(setup[b], 2),
            "first_batch_s": round(warm[b], 2),
        }
        if ref is not None:
            row["speedup_vs_eager"] = round(
                statistics.median(x / e for x, e in zip(rates[b], rates["eager"], strict=True)), 2
            )
            out = outputs[b]
            cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
            row["max_abs_diff_vs_eager"] = float(np.abs(out - ref).max())
            row["min_cosine_vs_eager"] = round(float(cos.min()), 6)
        rows.append(row)
    report = {
        "benchmark": "embed_bench",
        "model": args.model,
        "weights": found.source,
        "input_size": dc.input_size,
        "storage_size": dc.storage_size,
        "images_per_round": n,
        "batch_size": batch_size,
        "rounds": rounds,
        "content": content,
        "quick": args.quick,
        "machine": machine_info(),
        "results": rows,
    }
    out_path = results_path("embed_bench", args.quick)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(out_path, report, indent=2)
    print(f"{args.model} at {dc.input_size}px, {args.threads} threads, {n} images x {rounds} interleaved rounds")
    print(f"{'backend':<14} {'img/s':>8} {'x eager':>8} {'setup s':>8} {'1st batch s':>11} {'cos vs eager':>13}")
    for row in rows:
        print(
            f"{row['backend']:<14} {row['images_per_s_median']:>8.1f} {row.get('speedup_vs_eager', float('nan')):>8.2f} "
            f"{row['setup_s']:>8.1f} {row['first_batch_s']:>11.1f} {row.get('min_cosine_vs_eager', float('nan')):>13.6f}"
        )
    print(f"written {out_path}")


if __name__ == "__main__":
    main()
