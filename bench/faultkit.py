"""What every fault scenario of `bench/faults.py` uses: real `picsift` processes (commands and servers) killed with
SIGKILL, catalog checks, catalog snapshots to compare before/after states, and small file systems that fill up or
turn read-only. The scenarios live in fault_*.py beside it; the tests run them with a few kills."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    scenario: str
    kills: int = 0  # kills that landed while the process ran (for disk rows: commands that met the fault)
    acknowledged_lost: int = (
        0  # writes a finished command, a 2xx answer or a checksum sidecar acknowledged, missing after
    )
    catalogs_corrupted: int = 0  # catalogs failing integrity_check / foreign_key_check, or not opening
    resumes_ok: int = 0  # re-runs (import again, train --resume, restart the app, run the command again) that worked
    half_done: int = 0  # all-or-nothing commands found neither before nor after (target 0)
    clear_errors: int | None = None  # disk rows: exit 2 with one line (or HTTP 507), no traceback
    notes: str = ""
    seconds: int = 0


def picsift(*args: str) -> list[str]:
    return [sys.executable, "-m", "picsift", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(picsift(*args), env=env(), capture_output=True, text=True, timeout=timeout)


def must(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = run(*args, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"picsift {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done


def timed(*args: str) -> float:
    """Seconds one unkilled `picsift ARGS` takes here (the kills land uniformly within it)."""
    t0 = time.perf_counter()
    must(*args)
    return time.perf_counter() - t0


def write_images(folder: Path, n: int, classes: int, seed: int, size: int = 24) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = folder / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(d / f"{seed}-{i}.png")
    return folder


def png_bytes(seed: int, size: int = 16) -> bytes:
    import io

    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(buf, "PNG")
    return buf.getvalue()


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


def window(
    cmd: list[str], ready: Callable[[], bool], done: Callable[[], bool] | None = None, limit: float = 600
) -> float:
    """Run `cmd` unkilled; seconds from the moment `ready()` first held until `done()` holds or it exits (where
    kills are worth landing). Raises RuntimeError when it fails."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + limit
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    start = time.perf_counter()
    while done is not None and not done() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    span = time.perf_counter() - start
    _, err = proc.communicate(timeout=limit)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode()[-2000:]}")
    return span if done is not None else time.perf_counter() - start


def wal_bytes(ws: Path) -> int:
    try:
        return (ws / "catalog.sqlite-wal").stat().st_size
    except OSError:
        return 0


def writing(ws: Path) -> Callable[[], bool]:
    """True once a transaction writes to the catalog's WAL (it grows; reads leave it as it was)."""
    start = wal_bytes(ws)
    return lambda: wal_bytes(ws) > start


def partial_beside(dest: Path) -> Callable[[], bool]:
    """True once a `.NAME.partial-<pid>` folder (an export under way) appears beside `dest`."""
    prefix = f".{dest.name}.partial-"
    return lambda: dest.parent.is_dir() and any(p.name.startswith(prefix) for p in dest.parent.iterdir())


def catalog_ok(ws: Path) -> bool:
    """SQLite's integrity_check says ok and foreign_key_check finds nothing."""
    try:
        con = sqlite3.connect(ws / "catalog.sqlite")
        try:
            fine = con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            return fine and not con.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return False


def query(ws: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def catalog_paths(ws: Path) -> set[str]:
    return {row[0] for row in query(ws, "SELECT path FROM images")}


def label_rows(ws: Path) -> list[tuple[Any, ...]]:
    """(id, path, label, split, excluded) of every catalog image: what was stored."""
    return query(ws, "SELECT id, path, label, split, excluded FROM images ORDER BY id")


def snapshot(ws: Path, tables: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """{name: rows of the SQL} for a before/after comparison (timestamps left out by the queries)."""
    return {name: query(ws, sql) for name, sql in tables.items()}


def copy_workspace(template: Path, dest: Path) -> Path:
    """A fresh copy of a closed workspace (no process has it open, so its WAL is folded into the file)."""
    shutil.copytree(template, dest)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A `picsift label` or `picsift serve` process on a free port; `url` once `ready()`."""

    def __init__(self, *args: str, ready_path: str, headers: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            picsift(*args, "--port", str(self.port)), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.ready_path, self.headers = ready_path, headers or {}

    def wait_ready(self, limit: float = 120) -> None:
        import httpx

        deadline = time.time() + limit
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, headers=self.headers, timeout=5).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server on port {self.port} not ready after {limit} s")

    def wait_up(self, limit: float = 120) -> None:
        """Wait until the server answers at all (any status: on a broken disk it may answer only errors)."""
        import httpx

        deadline = time.time() + limit
        while time.time() < deadline and self.proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + self.ready_path, headers=self.headers, timeout=5)
                return
            time.sleep(0.1)
        raise RuntimeError(f"server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def new_token() -> str:
    return secrets.token_urlsafe(12)


def can_mount() -> str | None:
    """None when this process can mount a small tmpfs (root, or CAP_SYS_ADMIN), else why not."""
    with tempfile.TemporaryDirectory() as t:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", t], capture_output=True, text=True)
        if done.returncode != 0:
            return f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root or CAP_SYS_ADMIN"
        subprocess.run(["umount", t], check=True)
    return None


@contextlib.contextmanager
def small_disk(folder: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of `size_kib` KiB mounted at `folder` for the block (a real file system that fills up)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave_kib: int) -> Path:
    """Fill the file system of `folder` up to `leave_kib` KiB free with one file; returns it (delete it to free)."""
    st = os.statvfs(folder)
    free_kib = st.f_bavail * st.f_frsize // 1024
    filler = folder / "filler.bin"
    with filler.open("ab") as f:
        f.write(b"\0" * max(0, (free_kib - leave_kib)) * 1024)
    return filler


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def one_clear_line(done: subprocess.CompletedProcess[str]) -> bool:
    """Exit 2 with one `error:` line naming the cause, and no traceback."""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return (
        done.returncode == 2
        and "Traceback" not in done.stderr
        and len([line for line in lines if line.startswith("error:")]) == 1
        and any(w in done.stderr for w in ("disk is full", "read-only"))
    )
