"""Fault injection: real `picsift` processes killed with SIGKILL at random moments, then checked and resumed;
and a full disk and a read-only workspace on a real small file system.

Scenarios (each run N times, with a fresh workspace each time):

- import-kill: a first import finishes (its images are acknowledged), a second import of other images is
  killed midway; then the catalog's integrity is checked, the first import's images looked up, and the second
  import run again to completion.
- archive-kill: an import of a zip archive is killed during extraction; the next import of it must succeed
  and leave no partial extraction folder behind.
- train-kill: a training is killed at a random moment after its first checkpoint; the checkpoint must verify
  and be no older than the last one the sidecar acknowledged before the kill; `train --resume` must work.
- label-kill: `picsift label` with 4 clients writing labels (token cookie, X-Picsift-Client header, like the page)
  is killed; every write answered 200 must be in the catalog, and the app must start again on the workspace.
- feedback-kill: `picsift serve` with 3 clients sending feedback images is killed (every 201 must be stored, its
  image too), then `picsift feedback accept` of them all is killed (each item wholly pending or wholly accepted);
  the server restarts and the accept runs again.
- clean-apply-kill, import-labels-kill: killed during their catalog write; the catalog must be as before or as
  after an unkilled run (never in between), and a second run must leave it as after.
- export-kill, export-clean-kill: killed while writing; the destination is absent or complete (a bundle that
  loads and predicts; every file), and running again succeeds and leaves no partial folder.
- disk-full, read-only: import, train, export, export-clean and label writes (HTTP) on a tmpfs filled to a few
  KiB, or remounted read-only: one clear line each (exit 2 / HTTP 507), nothing stored lost, all work again
  once there is room (needs root or CAP_SYS_ADMIN to mount; skipped with the reason otherwise).

Prints a table and writes bench/results/faults.json with the machine's description.

    python bench/faults.py [--kills N] [--quick] [--seed S] [--scenarios a,b,...]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from fault_commands import clean_apply_kill, export_clean_kill, export_kill, import_labels_kill
from fault_disks import disk_full, read_only
from fault_servers import feedback_kill, label_kill
from faultkit import REPO, Outcome, catalog_ok, catalog_paths, env, kill_after, picsift, run, write_images

RESULTS = REPO / "bench" / "results" / "faults.json"
IMPORT_IMAGES = 1000
ARCHIVE_IMAGES = 150  # about 16 MB stored: extraction takes a moment, long enough to be killed in
DISK_ROUNDS = 3  # full and read-only disks: rounds (each meets the fault 5 times), fill level drawn per round


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


Scenario = Callable[[Path, int, random.Random], Outcome]


def scenarios(quick: bool) -> dict[str, tuple[Scenario, bool]]:
    """{name: (function(tmp, n, rng), whether n is the number of kills rather than disk rounds)}."""
    epochs = 8 if quick else 20
    return {
        "import-kill": (import_kill, True),
        "archive-kill": (archive_kill, True),
        "train-kill": (lambda tmp, n, rng: train_kill(tmp, n, rng, epochs=epochs), True),
        "label-kill": (label_kill, True),
        "feedback-kill": (feedback_kill, True),
        "clean-apply-kill": (clean_apply_kill, True),
        "import-labels-kill": (import_labels_kill, True),
        "export-kill": (export_kill, True),
        "export-clean-kill": (export_clean_kill, True),
        "disk-full": (disk_full, False),
        "read-only": (read_only, False),
    }


def table(outcomes: list[Outcome]) -> str:
    header = ("scenario", "kills/faults", "acknowledged writes lost", "catalogs corrupted", "half done",
              "clear errors", "resumes/re-runs that worked", "seconds")  # fmt: skip
    rows = [
        (
            o.scenario,
            o.kills,
            o.acknowledged_lost,
            o.catalogs_corrupted,
            o.half_done,
            "-" if o.clear_errors is None else o.clear_errors,
            o.resumes_ok,
            o.seconds,
        )  # fmt: skip
        for o in outcomes
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per scenario")
    parser.add_argument("--quick", action="store_true", help="2 kills per scenario (1 disk round), short trainings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", default="all", help="comma list of scenario names, or all")
    parser.add_argument(
        "--results", type=Path, default=None, help="where the JSON goes (default bench/results/faults.json)"
    )
    args = parser.parse_args()
    kills = 2 if args.quick else args.kills
    rounds = 1 if args.quick else DISK_ROUNDS
    rng = random.Random(args.seed)
    known = scenarios(args.quick)
    wanted = list(known) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [w for w in wanted if w not in known]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(known)}")
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="picsift-faults-") as t:
        for name in wanted:
            fn, by_kills = known[name]
            started = time.perf_counter()
            (Path(t) / name).mkdir()
            outcome = fn(Path(t) / name, kills if by_kills else rounds, rng)
            outcome.seconds = round(time.perf_counter() - started)
            outcomes.append(outcome)
            print(f"{name}: done in {outcome.seconds} s", file=sys.stderr, flush=True)
    print(table(outcomes))
    for o in outcomes:
        if o.notes:
            print(f"{o.scenario}: {o.notes}")
    sys.path.insert(0, str(REPO / "bench"))
    from benchutil import machine_info, results_path
    from picsift.jsonio import write_json

    out = args.results or results_path("faults", args.quick)

    report = {"machine": machine_info(), "seed": args.seed, "kills": kills, "disk_rounds": rounds,
              "results": [asdict(o) for o in outcomes]}  # fmt: skip
    write_json(out, report, indent=2)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
