"""A full disk and a read-only workspace, on a real small file system (a tmpfs mounted for the purpose).

Import, train, label writes (the labelling app over HTTP), export and export-clean each meet the fault; each must
answer one clear line (exit 2, no traceback; HTTP 507 from the app) and leave what was stored intact. Once the
disk has room again (or is writable again) every command must work."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from faultkit import (
    Outcome,
    Server,
    can_mount,
    catalog_ok,
    fill,
    label_rows,
    must,
    new_token,
    one_clear_line,
    query,
    remount,
    run,
    small_disk,
    write_images,
)

DISK_KIB = 64 * 1024


def label_writes(ws: Path, ids: list[int], limit: int = 300) -> tuple[list[Any], list[tuple[int, str]]]:
    """POST labels to a labelling app on `ws` until one is refused; -> (acknowledged writes, refusals (status,
    detail)). Acknowledged: (image id, label, annotator)."""
    import httpx

    token = new_token()
    server = Server("label", "-w", str(ws), "--no-browser", "--token", token, ready_path="/api/summary",
                    headers={"X-Picsift-Token": token})  # fmt: skip
    acked: list[Any] = []
    refused: list[tuple[int, str]] = []
    try:
        server.wait_up()
        with httpx.Client(base_url=server.url, headers={"X-Picsift-Token": token}, timeout=20) as c:
            for j in range(limit):
                who, label = f"w{j}", ("full", "fuller")[j % 2]
                r = c.post("/api/labels", json={"image_ids": [ids[j % len(ids)]], "label": label},
                           headers={"X-Picsift-User": who})  # fmt: skip
                if r.status_code == 200:
                    acked.append((ids[j % len(ids)], label, who))
                else:
                    refused.append((r.status_code, r.json().get("detail", "")))
                    break
    finally:
        server.stop()
    return acked, refused


def commands(ws: Path, disk: Path, images: Path, run_id: str) -> dict[str, tuple[str, ...]]:
    return {
        "import": ("import", str(images), "-w", str(ws)),
        "train": ("train", "-w", str(ws), "--model", "fastcnn", "--epochs", "1", "--device", "cpu"),
        "export": ("export", "-w", str(ws), "--run", run_id, "--out", str(disk / "bundle")),
        "export-clean": ("export-clean", str(disk / "clean"), "-w", str(ws)),
    }


def disk_fault(name: str, tmp: Path, rounds: int, rng: random.Random) -> Outcome:
    """`name` "disk-full" (filled to a few KiB free) or "read-only" (remounted read-only)."""
    out = Outcome(name, clear_errors=0)
    why = can_mount()
    if why is not None:
        out.notes = f"skipped: {why}"
        return out
    images = write_images(tmp / f"{name}-images", 60, 3, seed=61, size=16)
    more = write_images(tmp / f"{name}-more", 60, 3, seed=62, size=16)
    for k in range(rounds):
        with small_disk(tmp / f"{name}-disk-{k}", DISK_KIB) as disk:
            ws = disk / "ws"
            must("import", str(images), "-w", str(ws))
            must("train", "-w", str(ws), "--model", "fastcnn", "--epochs", "1", "--device", "cpu")
            (run_dir,) = [p for p in (ws / "runs").iterdir() if p.is_dir()]
            stored = label_rows(ws)
            filler = fill(disk, leave_kib=rng.choice((0, 16, 64, 256))) if name == "disk-full" else None
            if filler is None:
                remount(disk, "ro")
            cmds = commands(ws, disk, more, run_dir.name)
            for cmd, args in cmds.items():
                done = run(*args)
                if done.returncode == 0:  # it fitted in the space left: not a fault
                    out.notes += f"round {k}: {cmd} fitted; "
                    continue
                out.kills += 1
                if one_clear_line(done):
                    out.clear_errors = (out.clear_errors or 0) + 1
                else:
                    out.notes += f"round {k}: {cmd}: {done.stderr.strip()[-300:]!r}; "
            ids = [row[0] for row in query(ws, "SELECT id FROM images")] if catalog_ok(ws) else [1]
            acked, refused = label_writes(ws, ids)
            if refused:
                out.kills += 1
                status, detail = refused[0]
                if status == 507 and ("disk is full" in detail or "read-only" in detail):
                    out.clear_errors = (out.clear_errors or 0) + 1
                else:
                    out.notes += f"round {k}: label write answered {status} {detail!r}; "
            if filler is not None:
                filler.unlink()
            else:
                remount(disk, "rw")
            if not catalog_ok(ws):
                out.catalogs_corrupted += 1
                continue
            now = label_rows(ws)
            out.acknowledged_lost += sum(1 for row in stored if row not in now and row[0] not in {a[0] for a in acked})
            out.acknowledged_lost += sum(
                query(ws, "SELECT COUNT(*) FROM labels WHERE image_id=? AND label=? AND annotator=?", *a)[0][0] != 1
                for a in acked
            )
            for kind in ("bundle", "clean"):
                leftover = [p.name for p in disk.iterdir() if kind in p.name]
                if leftover:
                    out.notes += f"round {k}: left after the fault: {leftover}; "
            reruns = [run(*args) for args in cmds.values()]
            rerun = [r.returncode == 0 for r in reruns]
            out.notes += "".join(f"{r.stderr.strip()[-300:]!r}; " for r in reruns if r.returncode != 0)
            acked_again, refused_again = label_writes(ws, ids, limit=3)
            if all(rerun) and not refused_again and len(acked_again) == 3:
                out.resumes_ok += 1
            else:
                out.notes += f"round {k}: re-runs {dict(zip(cmds, rerun, strict=True))}, label {refused_again}; "
    return out


def disk_full(tmp: Path, rounds: int, rng: random.Random) -> Outcome:
    return disk_fault("disk-full", tmp, rounds, rng)


def read_only(tmp: Path, rounds: int, rng: random.Random) -> Outcome:
    return disk_fault("read-only", tmp, rounds, rng)
