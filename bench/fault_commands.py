"""Kill scenarios of the all-or-nothing commands: `clean --apply`, `import-labels`, `export` and `export-clean`.

After a SIGKILL at a random moment the catalog is either as before the command or as after an unkilled run of
it (never in between), an export folder is either absent or complete (a partial one is hidden and named
partial), and running the command again succeeds with the unkilled run's result."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from PIL import Image

from fault_servers import model_template
from faultkit import (
    Outcome,
    catalog_ok,
    copy_workspace,
    env,
    kill_after,
    must,
    partial_beside,
    picsift,
    query,
    run,
    snapshot,
    window,
    write_images,
    writing,
)

EXCLUSIONS = {
    "images": "SELECT id, excluded FROM images ORDER BY id",
    "exclusions": "SELECT image_id, action_id, reason, active FROM exclusions ORDER BY id",
    "actions": "SELECT id, kind, reason, undone_at IS NULL FROM actions ORDER BY id",
}
LABELS = {
    "images": "SELECT id, label, label_version FROM images ORDER BY id",
    "labels": "SELECT image_id, label, status, origin, annotator FROM labels ORDER BY id",
    "classes": "SELECT name FROM classes ORDER BY name",
}


def all_or_nothing(
    name: str, tmp: Path, template: Path, args: tuple[str, ...], tables: dict[str, str], kills: int, rng: random.Random
) -> Outcome:
    """Kill `picsift ARGS -w WS` on fresh copies of `template`; the catalog must then match the state before or
    after an unkilled run, and a second run must leave it as after."""
    out = Outcome(name)
    before = snapshot(template, tables)
    reference = copy_workspace(template, tmp / f"ws-{name}-reference")
    whole = window(picsift(*args, "-w", str(reference)), lambda: True)  # from its start to its exit
    other = copy_workspace(template, tmp / f"ws-{name}-span")
    span = window(picsift(*args, "-w", str(other)), writing(other))  # from its first catalog write to its exit
    after = snapshot(reference, tables)
    if after == before:
        raise RuntimeError(f"{name}: the command changed nothing, so the check would prove nothing")
    for k in range(kills):
        ws = copy_workspace(template, tmp / f"ws-{name}-{k}")
        # Even kills: any moment of the run; odd ones: from its first catalog write (its commit) to its exit.
        ready, delay = (lambda: True, whole) if k % 2 == 0 else (writing(ws), span)
        if not kill_after(picsift(*args, "-w", str(ws)), ready, rng.uniform(0.0, 1.0) * delay):
            out.notes += f"kill {k}: finished before the kill; "
            continue
        out.kills += 1
        if not catalog_ok(ws):
            out.catalogs_corrupted += 1
            continue
        state = snapshot(ws, tables)
        out.half_done += state not in (before, after)
        out.notes += f"kill {k}: {'after' if state == after else 'before' if state == before else 'HALF'}; "
        again = run(*args, "-w", str(ws))
        if again.returncode == 0 and snapshot(ws, tables) == after:
            out.resumes_ok += 1
    return out


def clean_apply_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    template = tmp / "ws-clean-template"
    images = write_images(tmp / "clean-images", 300, 3, seed=31, size=24)
    for i, f in enumerate(sorted(images.glob("c0/*.png"))[:60]):  # flat images: quality findings to exclude
        Image.new("RGB", (24, 24), (i, i, i)).save(f)
    must("import", str(images), "-w", str(template))
    must("clean", "-w", str(template), "--checks", "quality")
    args = ("clean", "--apply", "--exclude-quality")
    return all_or_nothing("clean-apply-kill", tmp, template, args, EXCLUSIONS, kills, rng)


def import_labels_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    template = tmp / "ws-import-labels-template"
    must("import", str(write_images(tmp / "import-labels-images", 1500, 3, seed=41, size=8)), "-w", str(template))
    labels = tmp / "labels.csv"
    rows = query(template, "SELECT path FROM images ORDER BY id")
    labels.write_text("path,label\n" + "".join(f"{p},kind{i % 4}\n" for i, (p,) in enumerate(rows)))
    args = ("import-labels", str(labels), "--overwrite")
    return all_or_nothing("import-labels-kill", tmp, template, args, LABELS, kills, rng)


def bundle_state(out: Path) -> str:
    """ "absent", "valid" (bundle.json, its model file, loads and predicts), or "broken"."""
    if not out.exists():
        return "absent"
    code = (
        "import sys, numpy as np; from picsift.deploy.bundle import BundlePredictor; "
        "p = BundlePredictor.load(sys.argv[1]); s = p.meta['data_config']['storage_size']; "
        "p.predict_arrays(np.zeros((1, s, s, 3), np.uint8))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], env=env(), capture_output=True, text=True)
    return "valid" if done.returncode == 0 else "broken"


def leftovers(out: Path) -> list[str]:
    """Entries beside `out` that a killed export left: anything named like it but not it."""
    return sorted(p.name for p in out.parent.iterdir() if out.name in p.name and p != out)


def export_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    out = Outcome("export-kill")
    template, _ = model_template(tmp)
    (run_dir,) = [p for p in (template / "runs").iterdir() if p.is_dir()]
    reference = tmp / "export-reference" / "bundle"
    args = ("export", "-w", str(template), "--run", run_dir.name, "--out", str(reference))
    span = window(picsift(*args), partial_beside(reference), reference.exists) + 0.2
    for k in range(kills):
        dest = tmp / f"exports-{k}" / "bundle"
        dest.parent.mkdir()
        args = ("export", "-w", str(template), "--run", run_dir.name, "--out", str(dest))
        if not kill_after(picsift(*args), partial_beside(dest), rng.uniform(0.0, 1.0) * span):
            out.notes += f"kill {k}: finished before the kill; "
            continue
        out.kills += 1
        state = bundle_state(dest)
        out.half_done += state == "broken" or any(not n.startswith(".bundle.partial-") for n in leftovers(dest))
        out.notes += f"kill {k}: {state}; "
        again = run(*args)
        if again.returncode == 0 and bundle_state(dest) == "valid" and not leftovers(dest):
            out.resumes_ok += 1
        elif again.returncode != 0:
            out.notes += f"kill {k}: export again failed: {again.stderr.strip().splitlines()[-1:]}; "
    if not catalog_ok(template):
        out.catalogs_corrupted += 1
    return out


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def export_clean_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    out = Outcome("export-clean-kill")
    template = tmp / "ws-export-clean-template"
    must("import", str(write_images(tmp / "export-clean-images", 1500, 3, seed=51, size=64)), "-w", str(template))
    reference = tmp / "export-clean-reference" / "clean"
    cmd = picsift("export-clean", str(reference), "-w", str(template))
    span = window(cmd, partial_beside(reference), reference.exists) + 0.2  # until the rename, and a moment after
    expected = tree(reference)
    for k in range(kills):
        dest = tmp / f"export-clean-{k}" / "clean"
        dest.parent.mkdir()
        args = ("export-clean", str(dest), "-w", str(template))
        if not kill_after(picsift(*args), partial_beside(dest), rng.uniform(0.0, 1.0) * span):
            out.notes += f"kill {k}: finished before the kill; "
            continue
        out.kills += 1
        complete = dest.is_dir() and tree(dest) == expected
        out.half_done += (dest.exists() and not complete) or any(
            not n.startswith(".clean.partial-") for n in leftovers(dest)
        )
        out.notes += f"kill {k}: {'complete' if complete else 'absent' if not dest.exists() else 'HALF'}; "
        if complete:
            out.resumes_ok += 1  # nothing to run again: it had finished its work
            continue
        again = run(*args)
        if again.returncode == 0 and tree(dest) == expected and not leftovers(dest):
            out.resumes_ok += 1
        elif again.returncode != 0:
            out.notes += f"kill {k}: export-clean again failed: {again.stderr.strip().splitlines()[-1:]}; "
    if not catalog_ok(template):
        out.catalogs_corrupted += 1
    return out


def main() -> None:  # a quick look at one scenario: python bench/fault_commands.py NAME
    import tempfile

    scenario = {"clean-apply-kill": clean_apply_kill, "import-labels-kill": import_labels_kill,
                "export-kill": export_kill, "export-clean-kill": export_clean_kill}[sys.argv[1]]  # fmt: skip
    with tempfile.TemporaryDirectory() as t:
        print(json.dumps(scenario(Path(t), 2, random.Random(0)).__dict__, indent=2))


if __name__ == "__main__":
    main()
