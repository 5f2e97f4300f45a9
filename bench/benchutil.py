"""What every benchmark records about the machine it ran on (BENCHMARKING.md): CPU, cores, versions, load,
and a measured fp32 matmul rate, so results from noisy shared machines can be read in context; plus what the
serving benchmarks share: `picsift` subprocesses on free loopback ports, a small trained bundle, raw HTTP/1.1
requests and the resident memory of a process."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
BOUNDARY = "picsiftbenchboundary"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Achieved fp32 matmul GFLOP/s with torch's current thread setting (the machine's ceiling, today)."""
    import torch

    a = torch.randn(n, n)
    torch.mm(a, a)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, a)
    return repeats * 2 * n**3 / (time.perf_counter() - start) / 1e9


def machine_info() -> dict[str, Any]:
    import torch

    versions: dict[str, str] = {}
    for name in ("sklearn", "onnxruntime", "timm", "cleanlab"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            continue
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    gflops = round(matmul_gflops(), 1)
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        **versions,
        "matmul_fp32_gflops": gflops,
        "load_average": [round(x, 2) for x in load],
        "load_avg_1min": round(load[0], 2),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---- processes --------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def picsift_command(*args: str) -> list[str]:
    """`python -m picsift ARGS` with this interpreter (run it with `picsift_env()`, so this checkout's code runs)."""
    return [sys.executable, "-m", "picsift", *args]


def picsift_env(**extra: str) -> dict[str, str]:
    """The environment for a picsift subprocess: this checkout's src first on PYTHONPATH, plus `extra`."""
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def start_picsift(args: Sequence[str], log: IO[bytes] | int = subprocess.DEVNULL) -> subprocess.Popen:
    """Start `picsift ARGS` as a subprocess (its output to `log`)."""
    return subprocess.Popen(picsift_command(*args), env=picsift_env(), stdout=log, stderr=subprocess.STDOUT)


def wait_ready(
    port: int, proc: subprocess.Popen, timeout: float = 180, path: str = "/healthz", headers: dict | None = None
) -> None:
    """Wait until GET `path` on 127.0.0.1:`port` answers 200. RuntimeError when `proc` exits or `timeout` s pass."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server on port {port} did not start in {timeout}s")


def stop(procs: Sequence[subprocess.Popen], timeout: float = 20) -> None:
    """SIGTERM each process, then SIGKILL those still running after `timeout` s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def rss_kib(pid: int) -> int | None:
    """The resident memory of process `pid` in KiB (VmRSS of /proc/PID/status), None where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


# ---- raw HTTP/1.1 -----------------------------------------------------------------------------------------
def http_request(method: str, path: str, port: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request (Content-Length set from `body`, unless given in `headers`)."""
    fields = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return head.encode() + body


def multipart_body(data: bytes, field: str = "file", filename: str = "x.jpg") -> bytes:
    """A multipart/form-data body (boundary `BOUNDARY`) with `data` as the one file of `field`."""
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_request(image: bytes, port: int, headers: dict[str, str] | None = None) -> bytes:
    """POST /v1/predict with `image` as multipart field "file"."""
    body = multipart_body(image)
    return http_request("POST", "/v1/predict", port, body, {"Content-Type": MULTIPART_TYPE, **(headers or {})})


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes the connection) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return status, await reader.readexactly(length), close


# ---- a small bundle ---------------------------------------------------------------------------------------
def build_bundle(work: Path, quick: bool, epochs: int | None = None) -> tuple[Path, list[bytes], str]:
    """Train the default model for a short budget on a small real dataset and export it.

    CIFAR-10 (200/class train, 20/class test, from ../shared/datasets) unless `quick` or absent, else
    scikit-learn's digits; `epochs` default 1 when quick, else 3. Returns (bundle, up to 16 test images'
    bytes, a description of the model).
    """
    import hashlib

    from picsift.config import TrainConfig
    from picsift.deploy.bundle import read_bundle_meta
    from picsift.deploy.export import export
    from picsift.store import Workspace
    from picsift.store.schema import Image
    from picsift.train import run

    cifar = DATASETS / "cifar10"
    files: list[tuple[Path, str, str]] = []
    if cifar.is_dir() and not quick:
        for split, per in (("train", 200), ("test", 20)):
            for cdir in sorted((cifar / split).iterdir()):
                files += [(f, cdir.name, split) for f in sorted(cdir.glob("*.jpg"))[:per]]
        dataset = "CIFAR-10 JPEG subset (200/class train, 20/class test) from ../shared/datasets"
    else:
        sys.path.insert(0, str(REPO / "tests"))
        from support.images import write_digits

        root = write_digits(work / "digits", per_class=40, classes=10, size=32)
        for cdir in sorted(root.iterdir()):
            fs = sorted(cdir.glob("*.png"))
            files += [(f, cdir.name, "test" if i % 8 == 0 else "train") for i, f in enumerate(fs)]
        dataset = "scikit-learn digits as 32x32 PNG (40/class)"
    ws = Workspace.open(work / "ws", create=True)
    rows = []
    for f, _, split in files:
        data = f.read_bytes()
        rows.append(
            Image(
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(f),
                source="bench",
                byte_size=len(data),
                readable=True,
                split=split,
                split_origin="source",
            )
        )
    ws.catalog.add_images(rows)
    for row, (_, label, _) in zip(ws.catalog.images(), files, strict=True):
        ws.catalog.set_label(row.id, label, origin="import")
    epochs = epochs or (1 if quick else 3)
    result = run(TrainConfig(workspace=ws.root, epochs=epochs, device="cpu"))
    bundle = export(result.run_dir, work / "bundle")
    images = [f.read_bytes() for f, _, split in files if split == "test"][:16]
    ws.close()
    model = read_bundle_meta(bundle)["model"]
    return bundle, images, f"{model} ({dataset}, {epochs} epoch(s), val acc {result.val_acc})"


def results_path(name: str, quick: bool) -> Path:
    """bench/results/<name>.json, or <name>_quick.json for a `--quick` smoke run, which never overwrites the
    measured results."""
    return Path(__file__).resolve().parent / "results" / f"{name}{'_quick' if quick else ''}.json"
