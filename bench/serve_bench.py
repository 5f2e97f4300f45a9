"""Serving benchmark: picsift serve (ONNX Runtime + micro-batching) vs a naive FastAPI + PyTorch eager
per-request server, in the same run, loaded from a second process over loopback; plus offline
inference, ONNX Runtime vs PyTorch eager at batch 1 and 64.

    python bench/serve_bench.py            # CIFAR-10 subset from ../shared/datasets, 3 rounds of 6 s
    python bench/serve_bench.py --quick    # digits, 1 round of 2 s (smoke test, < 1 minute)

Both servers run as separate uvicorn processes (one worker each) with the same decode function
(`resize_square(load_rgb(...))`); the load generator is a third process with a minimal HTTP/1.1
keep-alive client on asyncio, so it costs little CPU. Cells are interleaved (A B A B) per concurrency.
Writes bench/results/serve_bench.json and prints the table last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchutil import DATASETS, REPO, build_bundle, free_port, multipart_request, results_path, wait_ready
from benchutil import machine_info as machine
from picsift.jsonio import write_json

RESULTS = REPO / "bench" / "results" / "serve_bench.json"

NAIVE_SERVER = textwrap.dedent(
    '''
    """The baseline: FastAPI + PyTorch eager, one model call per request, no batching."""
    import sys

    import torch
    import uvicorn
    from fastapi import FastAPI, File, UploadFile

    from picsift.data.images import load_rgb, resize_square
    from picsift.models.artifact import load_artifact
    from picsift.models.forward import model_input

    torch.set_num_threads(int(sys.argv[3]))
    artifact = load_artifact(__import__("pathlib").Path(sys.argv[1]))
    model, dc = artifact.model.eval(), artifact.data_config
    app = FastAPI()


    @app.post("/v1/predict")
    def predict(file: UploadFile = File(...)) -> dict:
        x = torch.from_numpy(resize_square(load_rgb(file.file.read()), dc.storage_size)).permute(2, 0, 1)
        with torch.no_grad():
            probs = torch.softmax(model(model_input(x.unsqueeze(0), dc)), dim=1)[0]
        i = int(probs.argmax())
        return {"label": artifact.classes[i], "confidence": float(probs[i])}


    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}


    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
    '''
)

LOAD_GENERATOR = textwrap.dedent(
    '''
    """Closed-loop load: C keep-alive connections, each sends the next request when the last returns."""
    import asyncio, json, sys, time

    port, conc, seconds, warmup = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    bodies = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())]

    async def worker(i, stop_at, t_measure, lat, errors):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        k = i
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            writer.write(bodies[k % len(bodies)])
            k += 1
            await writer.drain()
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            done = time.perf_counter()
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head[:40].decode())
            elif now >= t_measure:
                lat.append(done - now)
        writer.close()

    async def main():
        lat, errors = [], []
        t0 = time.perf_counter()
        t_measure, stop_at = t0 + warmup, t0 + warmup + seconds
        await asyncio.gather(*(worker(i, stop_at, t_measure, lat, errors) for i in range(conc)))
        print(json.dumps({"latencies": lat, "errors": errors[:5], "n_errors": len(errors),
                          "seconds": time.perf_counter() - t_measure}))

    asyncio.run(main())
    '''
)


def load(port: int, conc: int, seconds: float, warmup: float, images: list[bytes], script: Path) -> dict:
    bodies = [multipart_request(im, port).hex() for im in images]
    out = subprocess.run(
        [sys.executable, str(script), str(port), str(conc), str(seconds), str(warmup)],
        input=json.dumps(bodies),
        capture_output=True,
        text=True,
        timeout=seconds + warmup + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    lat = sorted(r["latencies"])
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, int(p * n))] * 1000 if n else float("nan")

    return {
        "requests": n,
        "throughput_rps": n / r["seconds"],
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": r["n_errors"],
        "error_samples": r["errors"],
    }


def offline(bundle: Path, images: list[bytes], rounds: int, budget_s: float, threads: int) -> list[dict]:
    import numpy as np
    import torch

    from picsift.deploy.bundle import BundlePredictor
    from picsift.inference import Predictor, load_artifact

    torch.set_num_threads(threads)
    onnx = BundlePredictor.load(bundle, runtime="onnx", threads=threads)
    eager = Predictor.from_artifact(load_artifact(bundle / "model"))
    base = np.stack([onnx.decode(im) for im in images])
    rows = []
    for bs in (1, 64):
        x = np.concatenate([base] * (bs // len(base) + 1))[:bs]
        rates: dict[str, list[float]] = {"onnxruntime": [], "torch_eager": []}
        for _ in range(rounds):
            for name, fn in (("onnxruntime", onnx.predict_arrays), ("torch_eager", eager.predict_arrays)):
                fn(x)  # warm-up
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < budget_s:
                    fn(x)
                    n += bs
                rates[name].append(n / (time.perf_counter() - t0))
        ratios = [a / b for a, b in zip(rates["onnxruntime"], rates["torch_eager"], strict=True)]
        rows.append(
            {
                "batch": bs,
                **{f"{k}_img_s": v for k, v in rates.items()},
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        )
    return rows


def model_flops(bundle: Path) -> float | None:
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from picsift.models.artifact import load_artifact

        a = load_artifact(bundle / "model")
        x = torch.zeros(1, 3, a.data_config.input_size, a.data_config.input_size)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            a.model(x)
        return float(fc.get_total_flops())
    except Exception:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: small data, short cells")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds per cell")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per cell (interleaved)")
    ap.add_argument("--bundle", type=Path, default=None, help="use this bundle instead of training one")
    ap.add_argument("--out", type=Path, default=None)  # default: results_path("serve_bench", --quick)
    ap.add_argument(
        "--threads", type=int, default=1, help="inference threads for both runtimes and both servers (same for A and B)"
    )
    args = ap.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    rounds = args.rounds or (1 if args.quick else 3)
    warmup = 0.5 if args.quick else 1.0
    concurrencies = (1, 8, 32)

    work = Path(tempfile.mkdtemp(prefix="picsift-serve-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        t_start = time.perf_counter()
        if args.bundle:
            from picsift.deploy.bundle import read_bundle_meta

            bundle, model_desc = args.bundle, f"{read_bundle_meta(args.bundle)['model']} (bundle {args.bundle})"
            images = [f.read_bytes() for f in sorted((DATASETS / "cifar10" / "test" / "cat").glob("*.jpg"))[:16]]
        else:
            bundle, images, model_desc = build_bundle(work, args.quick)
        setup_s = time.perf_counter() - t_start
        info = machine()
        flops = model_flops(bundle)
        off = offline(bundle, images, rounds, 0.5 if args.quick else 1.5, args.threads)

        gen = work / "loadgen.py"
        gen.write_text(LOAD_GENERATOR)
        naive = work / "naive_server.py"
        naive.write_text(NAIVE_SERVER)
        p_ours, p_naive = free_port(), free_port()
        picsift_bin = shutil.which("picsift") or str(Path(sys.executable).parent / "picsift")
        procs.append(
            subprocess.Popen(
                [
                    picsift_bin,
                    "serve",
                    str(bundle),
                    "--port",
                    str(p_ours),
                    "--workspace",
                    str(work / "serve-ws"),
                    "--max-batch-size",
                    "32",
                    "--max-wait-ms",
                    "5",
                    "--threads",
                    str(args.threads),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(naive), str(bundle / "model"), str(p_naive), str(args.threads)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_ready(p_ours, procs[0])
        wait_ready(p_naive, procs[1])

        serving = []
        for c in concurrencies:
            cells: dict[str, list[dict]] = {"picsift": [], "naive": []}
            for _ in range(rounds):
                cells["picsift"].append(load(p_ours, c, seconds, warmup, images, gen))
                cells["naive"].append(load(p_naive, c, seconds, warmup, images, gen))
            ratios = [
                a["throughput_rps"] / b["throughput_rps"] for a, b in zip(cells["picsift"], cells["naive"], strict=True)
            ]
            p99_ratio = [a["p99_ms"] / b["p99_ms"] for a, b in zip(cells["picsift"], cells["naive"], strict=True)]

            def med(rows: list[dict], key: str) -> float:
                return statistics.median(r[key] for r in rows)

            serving.append(
                {
                    "concurrency": c,
                    **{f"{s}_{k}": med(cells[s], k) for s in cells for k in ("throughput_rps", "p50_ms", "p99_ms")},
                    "throughput_ratio_median": statistics.median(ratios),
                    "throughput_ratio_min": min(ratios),
                    "throughput_ratio_max": max(ratios),
                    "p99_ratio_median": statistics.median(p99_ratio),
                    "errors": sum(r["errors"] for s in cells for r in cells[s]),
                    "runs": cells,
                }
            )
        import httpx

        metrics = httpx.get(f"http://127.0.0.1:{p_ours}/metrics").text
        batch_lines = [line for line in metrics.splitlines() if line.startswith("picsift_batch_size_")]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "benchmark": "serve_bench",
        "quick": args.quick,
        "model": model_desc,
        "model_flops_per_image": flops,
        "machine": info,
        "seconds_per_cell": seconds,
        "warmup_s": warmup,
        "rounds": rounds,
        "setup_seconds": setup_s,
        "server_settings": {"max_batch_size": 32, "max_wait_ms": 5, "workers": 1, "inference_threads": args.threads},
        "offline": off,
        "serving": serving,
        "picsift_batch_size_metrics": batch_lines,
        "command": "python bench/serve_bench.py" + (" --quick" if args.quick else ""),
    }
    args.out = args.out or results_path("serve_bench", args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    write_json(tmp, result, indent=2)
    tmp.replace(args.out)

    print(
        f"\nmodel: {model_desc}; {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
        f"onnxruntime {info['onnxruntime']}, fp32 matmul {info['matmul_fp32_gflops']} GFLOP/s; "
        f"{rounds} round(s) x {seconds:.0f} s per cell, medians; {args.threads} inference thread(s) each; "
        f"load average {info['load_average'][0]:.1f}"
    )
    print("\noffline inference (images/s)")
    print(f"{'batch':>5} {'ONNX Runtime':>13} {'torch eager':>12} {'ratio (min-max)':>20}")
    for r in off:
        print(
            f"{r['batch']:>5} {statistics.median(r['onnxruntime_img_s']):>13.0f} "
            f"{statistics.median(r['torch_eager_img_s']):>12.0f} "
            f"{r['ratio_median']:>8.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
        )
    print("\nserving over HTTP (picsift = ONNX Runtime + micro-batching; naive = FastAPI + torch eager per request)")
    print(
        f"{'conc':>4} {'picsift req/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'naive req/s':>11} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'throughput ratio':>22} {'p99 ratio':>9}"
    )
    for r in serving:
        print(
            f"{r['concurrency']:>4} {r['picsift_throughput_rps']:>13.0f} {r['picsift_p50_ms']:>7.1f} "
            f"{r['picsift_p99_ms']:>7.1f} {r['naive_throughput_rps']:>11.0f} {r['naive_p50_ms']:>7.1f} "
            f"{r['naive_p99_ms']:>7.1f} {r['throughput_ratio_median']:>8.2f}x "
            f"({r['throughput_ratio_min']:.2f}-{r['throughput_ratio_max']:.2f}) "
            f"{r['p99_ratio_median']:>8.2f}x"
        )


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
