"""Batch prediction at scale: `picsift predict --out` with 1 and 2 decoding workers vs a naive loop (open,
preprocess, predict one image at a time with the same bundle and runtime), in the same run; and the peak memory
of `picsift predict --out` over 10,000 vs 100,000 inputs, which must stay flat.

    python bench/scale_predict_bench.py            # 100,000 inputs: CIFAR-10 test JPEGs under many paths
    python bench/scale_predict_bench.py --quick    # 5,000 inputs
    python bench/scale_predict_bench.py --bundle B # an existing bundle instead of training one

The 10,000 CIFAR-10 test JPEGs (../shared/datasets/cifar10/test) are repeated under many paths by symbolic
links (100 folders of 1,000), so every input is a separate file to open and decode. The model is the fast CNN
trained for one epoch on 200 CIFAR-10 training images per class (accuracy does not matter here) and exported;
both contenders run its ONNX model on ONNX Runtime with the default threads. Every contender is a fresh
process: images/s is inputs / wall time of the whole command (start-up included) and, for picsift, also the
prediction loop's own rate from its summary; CPU ms/image is the CPU time of the process and its workers
(wait4) per input, which a busy machine disturbs far less than the wall time. Memory, sampled every 0.2 s:
the peak RSS of the main process, and the peak of the summed PSS of it and its decoding workers (PSS splits
the pages forked workers share with the parent, so the sum is what the job really holds). The stage costs
(decode, model at batch 1 and 64, receiving a decoded batch from the DataLoader) are thread CPU times in
the benchmark's own process.
Writes bench/results/scale_predict.json and prints the table last.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from benchutil import machine_info as machine
from benchutil import results_path
from picsift.jsonio import write_json

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results" / "scale_predict.json"
LINKS_PER_FOLDER = 1000

NAIVE_LOOP = textwrap.dedent(
    '''
    """The baseline: walk the folder, then for each image open, preprocess and predict it alone; write a CSV."""
    import csv, os, sys, time
    from picsift.deploy.bundle import BundlePredictor

    bundle, inputs, out = sys.argv[1], sys.argv[2], sys.argv[3]
    predictor = BundlePredictor.load(bundle)
    start, n = time.perf_counter(), 0
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "confidence", "error"])
        for folder, dirs, files in os.walk(inputs):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    probs = predictor.predict_arrays(predictor.decode(path)[None])[0]
                    i = int(probs.argmax())
                    w.writerow([path, predictor.classes[i], float(probs[i]), ""])
                except Exception as e:
                    w.writerow([path, "", "", str(e)])
                n += 1
    print({"images": n, "loop_seconds": time.perf_counter() - start})
    '''
)


def build_bundle(work: Path) -> tuple[Path, str]:
    """The fast CNN, one epoch on 200 CIFAR-10 training images per class, exported to ONNX."""
    from picsift.config import TrainConfig
    from picsift.deploy.export import export
    from picsift.store import Workspace
    from picsift.store.schema import Image
    from picsift.train import run

    files = []
    for split, per in (("train", 200), ("test", 20)):
        for cdir in sorted((DATASETS / "cifar10" / split).iterdir()):
            files += [(f, cdir.name, split) for f in sorted(cdir.glob("*.jpg"))[:per]]
    ws = Workspace.open(work / "ws", create=True)
    rows = []
    for f, _, split in files:
        data = f.read_bytes()
        rows.append(
            Image(
                sha256=hashlib.sha256(data).hexdigest(), path=str(f), source="bench", byte_size=len(data),
                readable=True, split=split, split_origin="source",
            )
        )  # fmt: skip
    ws.catalog.add_images(rows)
    for row, (_, label, _) in zip(ws.catalog.images(), files, strict=True):
        ws.catalog.set_label(row.id, label, origin="import")
    result = run(TrainConfig(workspace=ws.root, model="fastcnn", epochs=1, device="cpu"))
    ws.close()
    return export(
        result.run_dir, work / "bundle"
    ), f"fastcnn, 1 epoch on 2,000 CIFAR-10 images (val acc {result.val_acc})"


def link_tree(root: Path, n: int) -> Path:
    """`n` links to the CIFAR-10 test JPEGs, in turn, under root/NNN/NNNNNNN.jpg (1,000 a folder)."""
    sources = sorted((DATASETS / "cifar10" / "test").glob("*/*.jpg"))
    for i in range(n):
        folder = root / f"{i // LINKS_PER_FOLDER:03d}"
        if i % LINKS_PER_FOLDER == 0:
            folder.mkdir(parents=True)
        os.symlink(sources[i % len(sources)], folder / f"{i:07d}.jpg")
    return root


def _kb(path: str, field: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS of `pid`, summed PSS of `pid` and its descendants) in kB, from /proc (0 for processes gone)."""
    try:
        rss = _kb(f"/proc/{pid}/status", "VmRSS:")
    except OSError:
        rss = 0
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += _kb(f"/proc/{p}/smaps_rollup", "Pss:")
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return rss, total


def measured(cmd: list[str]) -> dict[str, Any]:
    """Run `cmd`; its wall time, CPU time, stdout, peak RSS of the process and peak PSS of its tree (MB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]  # RSS of the process, PSS of the tree
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            rss, pss = _memory_kb(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_text = proc.stdout.read() if proc.stdout else ""
    err_text = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]}... failed ({proc.returncode}): {err_text[-2000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),  # the process and its reaped workers
        "peak_rss_mb": round(peak[0] / 1024, 1),  # sampled: wait4's maxrss starts at the parent's at fork
        "peak_pss_mb": round(peak[1] / 1024, 1),
        "stdout": out_text,
    }


def picsift_run(bundle: Path, inputs: Path, out: Path, workers: int, n: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "picsift", "predict", str(inputs), "--bundle", str(bundle), "--out", str(out),
           "--workers", str(workers), "--batch-size", "64", "--shard-size", "10000", "--json"]  # fmt: skip
    r = measured(cmd)
    summary = json.loads(r.pop("stdout"))
    assert summary["rows"] == n and summary["errors"] == 0, summary
    r.update(images=n, images_per_s=round(n / r["wall_s"], 1), loop_images_per_s=summary["images_per_second"])
    r["cpu_ms_per_image"] = round(1000 * r["cpu_s"] / n, 3)
    return r


def naive_run(bundle: Path, inputs: Path, work: Path, n: int) -> dict[str, Any]:
    script = work / "naive_loop.py"
    script.write_text(NAIVE_LOOP)
    r = measured([sys.executable, str(script), str(bundle), str(inputs), str(work / "naive.csv")])
    loop = eval(r.pop("stdout").strip().splitlines()[-1])  # the script prints one dict literal
    assert loop["images"] == n, loop
    r.update(images=n, images_per_s=round(n / r["wall_s"], 1), loop_images_per_s=round(n / loop["loop_seconds"], 1))
    r["cpu_ms_per_image"] = round(1000 * r["cpu_s"] / n, 3)
    return r


def component_costs(bundle: Path, inputs: Path) -> dict[str, Any]:
    """CPU milliseconds per image of each stage, in this process (thread CPU time, so other load does not count):
    decoding, the model at batch 1 and at batch 64, and what the main process spends receiving decoded batches
    from the DataLoader with 0, 1 and 2 workers (0: it decodes them itself)."""
    import numpy as np

    from picsift.deploy.batch.pipeline import BatchJob, decoded_batches
    from picsift.deploy.bundle import BundlePredictor

    predictor = BundlePredictor.load(bundle, threads=1)
    files = sorted(str(f) for f in inputs.glob("000/*.jpg"))
    c = time.thread_time()
    x = np.stack([predictor.decode(f) for f in files])
    out: dict[str, Any] = {"images": len(files), "decode_ms": 1000 * (time.thread_time() - c) / len(files)}
    for bs in (1, 64):
        c = time.thread_time()
        for i in range(0, len(x), bs):
            predictor.predict_arrays(x[i : i + bs], bs)
        out[f"model_batch_{bs}_ms"] = 1000 * (time.thread_time() - c) / len(x)
    for workers in (0, 1, 2):
        job = BatchJob([str(inputs / "000")], [], inputs, workers=workers)
        c = time.thread_time()
        n = sum(len(b["paths"]) for b in decoded_batches(job, [0], predictor.data_config.storage_size))
        out[f"receive_workers_{workers}_ms"] = 1000 * (time.thread_time() - c) / n
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def speedup(naive: dict[str, Any], ours: dict[str, Any]) -> dict[str, float]:
    """Ours over the naive loop: images/s of the whole command and of the loop, and CPU time per image."""
    return {
        "whole_command": round(ours["images_per_s"] / naive["images_per_s"], 2),
        "loop": round(ours["loop_images_per_s"] / naive["loop_images_per_s"], 2),
        "cpu_per_image": round(naive["cpu_ms_per_image"] / ours["cpu_ms_per_image"], 2),
    }


def table(results: dict[str, Any]) -> str:
    rows = ["| run | inputs | wall s | images/s (whole command) | images/s (loop) | CPU ms/image | peak RSS MB (main) | peak PSS MB (all) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in results["runs"].items():
        rows.append(
            f"| {name} | {r['images']:,} | {r['wall_s']} | {r['images_per_s']:,.0f} | {r['loop_images_per_s']:,.0f} "
            f"| {r['cpu_ms_per_image']} | {r['peak_rss_mb']:,.0f} | {r['peak_pss_mb']:,.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5,000 inputs (and 1,000 for the memory comparison)")
    ap.add_argument("--images", type=int, default=None, help="inputs (default 100,000; --quick 5,000)")
    ap.add_argument("--bundle", type=Path, default=None, help="use this bundle instead of training one")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the three contenders (median kept)")
    ap.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS})")
    args = ap.parse_args()
    if not (DATASETS / "cifar10" / "test").is_dir():
        raise SystemExit(f"CIFAR-10 JPEGs not found at {DATASETS / 'cifar10'}")
    n = args.images or (5_000 if args.quick else 100_000)
    small = max(n // 10, 1)
    out_file = args.out or results_path("scale_predict", args.quick)
    work = Path(tempfile.mkdtemp(prefix="picsift-scale-predict-"))
    try:
        if args.bundle:
            bundle, model = args.bundle, f"bundle {args.bundle}"
        else:
            bundle, model = build_bundle(work)
        big_tree, small_tree = link_tree(work / "inputs", n), link_tree(work / "inputs-small", small)
        info = machine()
        costs = component_costs(bundle, big_tree)
        contenders = {
            "naive loop": lambda r: naive_run(bundle, big_tree, work, n),
            "picsift --workers 1": lambda r: picsift_run(bundle, big_tree, work / f"out-1-{r}", 1, n),
            "picsift --workers 2": lambda r: picsift_run(bundle, big_tree, work / f"out-2-{r}", 2, n),
        }
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for r in range(args.rounds):  # interleaved, each round in another order, so load drift hits all alike
            names = list(contenders)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                rounds[name].append(contenders[name](r))
                shutil.rmtree(work / f"out-{name[-1]}-{r}", ignore_errors=True)
        runs: dict[str, Any] = {}
        for name, done in rounds.items():  # the round of median speed, with every round's speed
            runs[name] = sorted(done, key=lambda x: x["images_per_s"])[len(done) // 2]
            runs[name]["rounds_images_per_s"] = [x["images_per_s"] for x in done]
        runs[f"picsift --workers 2, {small:,} inputs"] = picsift_run(bundle, small_tree, work / "out-small", 2, small)
        best = max(runs["picsift --workers 1"]["images_per_s"], runs["picsift --workers 2"]["images_per_s"])
        results = {
            "benchmark": "scale_predict",
            "images": n,
            "rounds": args.rounds,
            "model": model,
            "machine": info,
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "component_cpu_ms_per_image": costs,
            "runs": runs,
            "speedup_vs_naive": {
                f"workers {w}": speedup(runs["naive loop"], runs[f"picsift --workers {w}"]) for w in (1, 2)
            },
            "best_speedup": round(best / runs["naive loop"]["images_per_s"], 2),
            "memory_growth_small_to_full": {
                key: round(runs["picsift --workers 2"][key] / runs[f"picsift --workers 2, {small:,} inputs"][key], 3)
                for key in ("peak_rss_mb", "peak_pss_mb")
            },
        }
        results["table"] = table(results)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(out_file, results)
        print(f"model: {model}; {info['cores']} cores, load average {info['load_average']}")
        print(f"speed-up vs the naive loop: {results['speedup_vs_naive']}")
        print(f"memory at {n:,} over {small:,} inputs: {results['memory_growth_small_to_full']}")
        print(f"CPU ms per image, one thread: {costs}")
        print(results["table"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
