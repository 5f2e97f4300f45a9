"""Import throughput: `picsift import` (threaded decode, bulk inserts) against a straightforward
sequential importer (read, hash, decode, one ORM object per image, one commit), on the same CIFAR-10
JPEGs, interleaved A B A B. Also the re-import (nothing new) time.

    python bench/import_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps

from benchutil import results_path
from picsift.config import ImportConfig
from picsift.ingest import run
from picsift.jsonio import write_json
from picsift.store import Workspace
from picsift.store.schema import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10" / "test"


def make_subset(dest: Path, n: int) -> Path:
    """Symlinks to the first n/10 images of each class (folder per class)."""
    per_class = max(1, n // 10)
    for c in sorted(os.listdir(DATA)):
        (dest / c).mkdir(parents=True)
        for f in sorted(os.listdir(DATA / c))[:per_class]:
            (dest / c / f).symlink_to(DATA / c / f)
    return dest


def sequential_import(folder: Path, ws_dir: Path) -> int:
    ws = Workspace.open(ws_dir, create=True)
    n = 0
    with ws.catalog.session() as s:
        for c in sorted(os.listdir(folder)):
            for name in sorted(os.listdir(folder / c)):
                path = folder / c / name
                data = path.read_bytes()
                with PILImage.open(path) as img:
                    img.load()
                    shown = ImageOps.exif_transpose(img) or img
                    s.add(Image(sha256=hashlib.sha256(data).hexdigest(), path=str(path), source=str(folder),
                                byte_size=len(data), width=shown.width, height=shown.height, format=img.format,
                                mode=img.mode, label=c))  # fmt: skip
                n += 1
    ws.close()
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 images, 2 rounds (under a minute)")
    args = parser.parse_args()
    n, rounds = (1000, 2) if args.quick else (10_000, 3)
    if not DATA.is_dir():
        raise SystemExit(f"CIFAR-10 not found at {DATA}")
    tmp = Path(tempfile.mkdtemp(prefix="picsift-import-bench-"))
    try:
        folder = make_subset(tmp / "data", n)
        times: dict[str, list[float]] = {"picsift": [], "sequential": [], "re-import": []}
        for r in range(rounds):
            t = time.perf_counter()
            result = run(ImportConfig(source=str(folder), workspace=tmp / f"ws-a{r}"))
            times["picsift"].append(time.perf_counter() - t)
            assert result.added == n, result.added
            t = time.perf_counter()
            again = run(ImportConfig(source=str(folder), workspace=tmp / f"ws-a{r}"))
            times["re-import"].append(time.perf_counter() - t)
            assert again.already_present == n
            t = time.perf_counter()
            assert sequential_import(folder, tmp / f"ws-b{r}") == n
            times["sequential"].append(time.perf_counter() - t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [b / a for a, b in zip(times["picsift"], times["sequential"], strict=True)]
    out = {
        "benchmark": "import",
        "images": n,
        "rounds": rounds,
        "seconds": times,
        "median_seconds": med,
        "images_per_second": {k: n / v for k, v in med.items()},
        "speedup_vs_sequential": {"per_round": ratios, "median": statistics.median(ratios)},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "data": "../shared/datasets/cifar10/test (32x32 JPEG), folder per class",
    }
    dest = results_path("import_bench", args.quick)
    dest.parent.mkdir(exist_ok=True)
    write_json(dest, out, indent=2)
    print(f"\nimport of {n} CIFAR-10 JPEGs, {rounds} rounds (median, min-max)")
    print(f"{'importer':<12} {'seconds':>18} {'images/s':>10}")
    for k, v in times.items():
        print(f"{k:<12} {med[k]:>7.2f} ({min(v):.2f}-{max(v):.2f}) {n / med[k]:>10.0f}")
    print(f"picsift vs sequential: {statistics.median(ratios):.2f}x faster (median of {rounds} paired rounds)")


if __name__ == "__main__":
    main()
