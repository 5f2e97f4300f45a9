"""Shared set-up for the deploy tests: a tiny labelled workspace, a trained run and its bundle."""

from __future__ import annotations

import hashlib
from pathlib import Path

from picsift.store import Workspace
from picsift.store.schema import Image
from support.images import write_digits


def make_workspace(root: Path, per_class: int = 20, classes: int = 3, size: int = 16) -> Path:
    """Digits PNGs (folder per class) in a catalog: 70% train, 15% val, 15% test, labelled."""
    images = write_digits(root / "images", per_class=per_class, classes=classes, size=size)
    ws = Workspace.open(root / "ws", create=True)
    rows, labels = [], []
    for c in sorted(p.name for p in images.iterdir()):
        files = sorted((images / c).glob("*.png"))
        for i, f in enumerate(files):
            split = "train" if i < 0.7 * len(files) else ("val" if i < 0.85 * len(files) else "test")
            data = f.read_bytes()
            rows.append(
                Image(
                    sha256=hashlib.sha256(data).hexdigest(),
                    path=str(f.resolve()),
                    source=str(images),
                    byte_size=len(data),
                    width=size,
                    height=size,
                    format="PNG",
                    mode="RGB",
                    readable=True,
                    split=split,
                    split_origin="source",
                )
            )
            labels.append(c)
    ws.catalog.add_images(rows)
    for row, label in zip(ws.catalog.images(), labels, strict=True):
        ws.catalog.set_label(row.id, label, origin="import")
    ws.close()
    return root / "ws"


def train_run(ws_root: Path, model: str = "fastcnn", **kw: object) -> Path:
    from picsift.config import TrainConfig
    from picsift.train import run

    cfg = TrainConfig(workspace=ws_root, model=model, epochs=1, device="cpu", amp=False, **kw)  # type: ignore[arg-type]
    return run(cfg).run_dir


class LiveServer:
    """A real uvicorn server on a free loopback port, in a background thread (one per test)."""

    def __init__(self, app: object) -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)

    def __enter__(self) -> LiveServer:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
