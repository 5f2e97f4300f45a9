"""Fault injection: real `picsift` processes killed with SIGKILL at random moments, then checked and resumed.

Scenarios (each run N times, with a fresh workspace each time):

- import-kill: a first import finishes (its images are acknowledged), a second import of other images is
  killed midway; then the catalog's integrity is checked, the first import's images looked up, and the second
  import run again to completion.
- archive-kill: an import of a zip archive is killed during extraction; the next import of it must succeed
  and leave no partial extraction folder behind.
- train-kill: a training is killed at a random moment after its first checkpoint; the checkpoint must verify
  and be no older than the last one the sidecar acknowledged before the kill; `train --resume` must work.

Prints a table (scenario, kills, acknowledged writes lost, catalogs corrupted, resumes that worked) and writes
bench/results/faults.json with the machine's description.

    python bench/faults.py [--kills N] [--quick] [--seed S]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "faults.json"
IMPORT_IMAGES = 1000
ARCHIVE_IMAGES = 150  # about 16 MB stored: extraction takes a moment, long enough to be killed in


@dataclass
class Outcome:
    scenario: str
    kills: int = 0
    acknowledged_lost: int = 0  # writes a finished command or a checksum sidecar acknowledged, missing after
    catalogs_corrupted: int = 0  # catalogs failing SQLite's integrity check or not opening
    resumes_ok: int = 0  # re-runs (import again, train --resume) that exited 0 with the expected result
    notes: str = ""


def picsift(*args: str) -> list[str]:
    return [sys.executable, "-m", "picsift", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(picsift(*args), env=env(), capture_output=True, text=True, timeout=timeout)


def write_images(folder: Path, n: int, classes: int, seed: int, size: int = 24) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = folder / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(d / f"{seed}-{i}.png")
    return folder


def kill_after(cmd: list[str], ready: Callable[[], bool], delay: float, limit: float = 300) -> bool:
    """Start `cmd`, wait until `ready()`, then `delay` seconds more, and SIGKILL it. False when it ended first."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + limit
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def catalog_ok(ws: Path) -> bool:
    try:
        con = sqlite3.connect(ws / "catalog.sqlite")
        try:
            return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
    except sqlite3.Error:
        return False


def catalog_paths(ws: Path) -> set[str]:
    con = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return {row[0] for row in con.execute("SELECT path FROM images")}
    finally:
        con.close()


def import_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    out = Outcome("import-kill")
    first = write_images(tmp / "first", 60, 3, seed=1)
    # How long a whole second import takes here: the kills land uniformly within it.
    calibrate = write_images(tmp / "calibrate", IMPORT_IMAGES, 3, seed=99)
    t0 = time.perf_counter()
    run("import", str(calibrate), "-w", str(tmp / "ws-calibrate"))
    whole = time.perf_counter() - t0
    for k in range(kills):
        ws = tmp / f"ws-import-{k}"
        second = write_images(tmp / f"second-{k}", IMPORT_IMAGES, 3, seed=100 + k)
        done = run("import", str(first), "-w", str(ws))
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        acknowledged = catalog_paths(ws)
        delay = rng.uniform(0.3, 0.95) * whole
        if not kill_after(picsift("import", str(second), "-w", str(ws)), lambda: True, delay):
            out.notes += f"kill {k}: import finished before the kill; "
            continue
        out.kills += 1
        if not catalog_ok(ws):
            out.catalogs_corrupted += 1
            continue
        out.acknowledged_lost += len(acknowledged - catalog_paths(ws))
        again = run("import", str(second), "-w", str(ws))
        if again.returncode == 0 and len(catalog_paths(ws)) == 60 + IMPORT_IMAGES:
            out.resumes_ok += 1
    return out


def archive_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    out = Outcome("archive-kill")
    archive = tmp / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        noise = np.random.default_rng(7)
        for i in range(ARCHIVE_IMAGES):
            buf = io.BytesIO()
            Image.fromarray(noise.integers(0, 255, (192, 192, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
            zf.writestr(f"data/c{i % 3}/{i}.png", buf.getvalue())
    for k in range(kills):
        ws = tmp / f"ws-archive-{k}"
        archives = ws / "files" / "archives"

        def extracting(archives: Path = archives) -> bool:
            return archives.is_dir() and any(".partial-" in p.name for p in archives.iterdir())

        if not kill_after(picsift("import", str(archive), "-w", str(ws)), extracting, rng.uniform(0.0, 0.1)):
            out.notes += f"kill {k}: extraction finished before the kill; "
            continue
        out.kills += 1
        if (ws / "catalog.sqlite").exists() and not catalog_ok(ws):
            out.catalogs_corrupted += 1
            continue
        again = run("import", str(archive), "-w", str(ws))
        partials = [p for p in archives.iterdir() if ".partial-" in p.name]
        if again.returncode == 0 and not partials and len(catalog_paths(ws)) == ARCHIVE_IMAGES:
            out.resumes_ok += 1
        elif partials:
            out.notes += f"kill {k}: partial folders left: {[p.name for p in partials]}; "
    return out


def train_kill(tmp: Path, kills: int, rng: random.Random, epochs: int) -> Outcome:
    out = Outcome("train-kill")
    images = write_images(tmp / "train-images", 240, 3, seed=3, size=16)
    for k in range(kills):
        ws = tmp / f"ws-train-{k}"
        if run("import", str(images), "-w", str(ws)).returncode != 0:
            raise RuntimeError("import failed")
        runs = ws / "runs"
        seen: dict[str, int] = {}

        def checkpointed(runs: Path = runs, seen: dict[str, int] = seen) -> bool:
            for sidecar in runs.glob("*/checkpoint.pt.json") if runs.is_dir() else []:
                try:
                    seen["epoch"] = int(json.loads(sidecar.read_text())["epoch"])
                    return True
                except (OSError, ValueError, KeyError, TypeError):
                    continue
            return False

        cmd = picsift("train", "-w", str(ws), "--model", "fastcnn", "--epochs", str(epochs), "--device", "cpu")
        if not kill_after(cmd, checkpointed, rng.uniform(0.0, 1.5)):
            out.notes += f"kill {k}: training finished before the kill; "
            continue
        out.kills += 1
        acknowledged = seen.get("epoch", -1)
        (run_dir,) = [p for p in runs.iterdir() if (p / "checkpoint.pt").exists()]
        check = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from picsift.train.checkpoints import load_checkpoint; "
                "print(load_checkpoint(sys.argv[1])['epoch'])",
                str(run_dir / "checkpoint.pt"),
            ],
            env=env(),
            capture_output=True,
            text=True,
        )
        if check.returncode != 0 or int(check.stdout.strip() or -1) < acknowledged:
            out.acknowledged_lost += 1
            out.notes += f"kill {k}: {check.stderr.strip().splitlines()[-1:]}; "
            continue
        if not catalog_ok(ws):
            out.catalogs_corrupted += 1
        resumed = run("train", "-w", str(ws), "--model", "fastcnn", "--epochs", str(epochs + 1), "--resume",
                      run_dir.name, "--device", "cpu")  # fmt: skip
        if resumed.returncode == 0:
            out.resumes_ok += 1
        else:
            out.notes += f"kill {k}: resume failed: {resumed.stderr.strip().splitlines()[-1:]}; "
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per scenario")
    parser.add_argument("--quick", action="store_true", help="2 kills per scenario, short trainings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", default="import-kill,archive-kill,train-kill")
    args = parser.parse_args()
    kills = 2 if args.quick else args.kills
    rng = random.Random(args.seed)
    wanted = set(args.scenarios.split(","))
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="picsift-faults-") as t:
        tmp = Path(t)
        if "import-kill" in wanted:
            outcomes.append(import_kill(tmp, kills, rng))
        if "archive-kill" in wanted:
            outcomes.append(archive_kill(tmp, kills, rng))
        if "train-kill" in wanted:
            outcomes.append(train_kill(tmp, kills, rng, epochs=8 if args.quick else 20))
    header = ("scenario", "kills", "acknowledged writes lost", "catalogs corrupted", "resumes that worked")
    rows = [(o.scenario, o.kills, o.acknowledged_lost, o.catalogs_corrupted, o.resumes_ok) for o in outcomes]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    for o in outcomes:
        if o.notes:
            print(f"{o.scenario}: {o.notes}")
    sys.path.insert(0, str(REPO / "bench"))
    from benchutil import machine_info, results_path

    out = results_path("faults", args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine_info(), "seed": args.seed, "results": [asdict(o) for o in outcomes]}, indent=2)
        + "\n"
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
