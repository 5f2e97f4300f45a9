"""`make demo`: the whole pipeline on scikit-learn's bundled handwritten digits, on any machine.

Writes the digits as PNG files in folder-per-class layout, then runs the same CLI commands a user
would type: import, status, train, evaluate, predict.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DEMO_ROOT = Path("demo-data")


def write_digits_pngs(dest: str | Path, size: int = 32) -> int:
    """1,797 real 8x8 digit scans, upscaled to size x size PNGs in dest/<digit>/NNNN.png."""
    from sklearn.datasets import load_digits

    dest = Path(dest)
    digits = load_digits()
    for i, (img, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = dest / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (img / 16.0 * 255.0).round().astype(np.uint8)
        Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
    return len(digits.images)


def sh(*args: str) -> None:
    """Run `picsift ARGS` in a subprocess, echoing the command line first. CalledProcessError when it fails."""
    cmd = [sys.executable, "-m", "picsift", *args]
    print(f"\n$ picsift {shlex.join(args)}", flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    """The demo: write digit PNGs to demo-data/digits, then import, train, evaluate and predict with the CLI."""
    started = time.perf_counter()
    images = DEMO_ROOT / "digits"
    workspace = DEMO_ROOT / "workspace"
    shutil.rmtree(DEMO_ROOT, ignore_errors=True)
    n = write_digits_pngs(images)
    print(f"wrote {n} digit images to {images}/<digit>/", flush=True)
    ws = ["--workspace", str(workspace)]
    sh("import", str(images), *ws)
    sh("status", *ws)
    sh("train", *ws, "--seed", "0")
    sh("evaluate", *ws)
    samples = [sorted((images / str(digit)).glob("*.png"))[-1] for digit in (0, 3, 5, 8)]
    sh("predict", *map(str, samples), *ws, "--top-k", "2")
    metrics = sorted((workspace / "runs").glob("*/metrics.json"))
    if metrics:
        import json

        m = json.loads(metrics[-1].read_text())
        print(f"\ntest accuracy: {m['accuracy']:.4f}   report: {metrics[-1].parent / 'report.html'}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
