"""URL lists against a real local HTTP server: success, 404, wrong content type, size cap, timeout,
retries, and re-import without re-downloading."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.config import ImportConfig
from picsift.errors import DatasetError
from picsift.ingest import run
from picsift.store import Workspace


def _png_bytes(seed: int, size: int = 10) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


CAT = _png_bytes(1)
DOG = _png_bytes(2)
BIG = _png_bytes(3, size=200)  # ~120 kB of noise
FLAKY = _png_bytes(4)


class _Handler(BaseHTTPRequestHandler):
    hits: Counter[str]

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: bytes, content_type: str | None, length: bool = True) -> None:
        self.send_response(code)
        if content_type:
            self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.hits[self.path] += 1
        if self.path == "/cat.png":
            self._send(200, CAT, "image/png")
        elif self.path == "/dog":
            self._send(200, DOG, "application/octet-stream")
        elif self.path == "/same-as-cat.png":
            self._send(200, CAT, "image/png; charset=binary")
        elif self.path == "/page.html":
            self._send(200, b"<html><body>not an image</body></html>", "text/html; charset=utf-8")
        elif self.path == "/big.png":
            self._send(200, BIG, "image/png")
        elif self.path == "/big-no-length.png":
            self.close_connection = True
            self._send(200, BIG, "image/png", length=False)
        elif self.path == "/slow.png":
            time.sleep(3)
            self._send(200, CAT, "image/png")
        elif self.path == "/flaky.png":
            if self.hits[self.path] == 1:
                self._send(503, b"busy", "text/plain")
            else:
                self._send(200, FLAKY, "image/png")
        elif self.path == "/broken.jpg":
            self._send(200, b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")
        else:
            self._send(404, b"no", "text/plain")


@pytest.fixture
def server() -> Iterator[tuple[str, Counter[str]]]:
    hits: Counter[str] = Counter()
    handler = type("Handler", (_Handler,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def _cfg(source: Path, ws: Path, **kw: object) -> ImportConfig:
    # 1.5 s: well under the slow handler's 3 s, well over a good download on a busy 2-core machine
    opts: dict = {"url_timeout_s": 1.5, "url_retries": 1, "url_max_bytes": 50_000}
    opts.update(kw)
    return ImportConfig(source=str(source), workspace=ws, **opts)


def test_url_list_downloads_and_records_failures(tmp_path: Path, server: tuple[str, Counter[str]]) -> None:
    base, hits = server
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# pictures to import\n"
        f"{base}/cat.png,cat\n"
        f"{base}/dog dog\n"
        f"{base}/same-as-cat.png,cat\n"
        f"{base}/missing.png\n"
        f"{base}/page.html\n"
        f"{base}/big.png\n"
        f"{base}/big-no-length.png\n"
        f"{base}/slow.png\n"
        f"{base}/flaky.png\n"
        f"{base}/broken.jpg\n"
        "\n"
        f"{base}/cat.png,cat\n"
    )
    ws = tmp_path / "ws"
    result = run(_cfg(urls, ws))
    assert result.kind == "urls"
    assert (result.added, result.duplicates) == (3, 1)  # cat, dog, flaky; same-as-cat
    reasons = {i.path.rsplit("/", 1)[1]: i.reason for i in result.unreadable}
    assert reasons["missing.png"] == "download failed: HTTP 404 Not Found"
    assert reasons["page.html"] == "download failed: not an image: the server sent Content-Type text/html"
    assert reasons["big.png"].startswith("download failed: too large:")
    assert reasons["big-no-length.png"].startswith("download failed: too large: more than")
    assert reasons["slow.png"] == "download failed: timed out after 1.5 s (2 attempts)"
    assert reasons["broken.jpg"].startswith(("truncated", "corrupt", "not an image"))
    assert [i.reason for i in result.skipped] == ["listed again on line 13 (first on line 2)"]
    assert hits["/missing.png"] == 1  # a 404 is not retried
    assert hits["/flaky.png"] == 2  # a 503 is

    w = Workspace.open(ws)
    rows = {r.source.rsplit("/", 1)[1]: r for r in w.catalog.images(readable=None)}
    cat = rows["cat.png"]
    assert cat.readable and cat.label == "cat" and cat.source_kind == "url"
    assert Path(cat.path).parent == w.root / "files" / "urls" and Path(cat.path).read_bytes() == CAT
    assert rows["dog"].label == "dog" and rows["dog"].path.endswith(".bin")
    assert rows["same-as-cat.png"].duplicate_of == cat.id
    assert not rows["missing.png"].readable and rows["missing.png"].path == f"{base}/missing.png"
    w.close()

    # Re-import: successful URLs are not fetched again; failed ones are retried.
    before = Counter(hits)
    again = run(_cfg(urls, ws))
    assert again.added == 0 and again.duplicates == 0 and not again.unreadable
    assert hits["/cat.png"] == before["/cat.png"] and hits["/dog"] == before["/dog"]
    assert hits["/missing.png"] == before["/missing.png"] + 1
    assert again.already_present == 10


def test_failed_download_that_later_works_is_updated(tmp_path: Path, server: tuple[str, Counter[str]]) -> None:
    base, _ = server
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{base}/big.png\n")
    ws = tmp_path / "ws"
    first = run(_cfg(urls, ws, url_max_bytes=1000))
    assert len(first.unreadable) == 1
    second = run(_cfg(urls, ws, url_max_bytes=10_000_000))
    assert second.updated == 1
    w = Workspace.open(ws)
    (row,) = w.catalog.images(readable=None)
    assert row.readable and os.path.isfile(row.path) and row.width == 200
    w.close()


def test_url_list_errors_name_the_line(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://example.invalid/a.png\nftp://example.invalid/b.png\nnot a url\n")
    with pytest.raises(DatasetError, match=r"line 2: not an http\(s\) URL.*line 3: not an http\(s\) URL"):
        run(ImportConfig(source=str(urls), workspace=tmp_path / "ws"))
    assert not (tmp_path / "ws" / "files" / "urls").exists()


def test_manifest_may_list_urls(tmp_path: Path, server: tuple[str, Counter[str]]) -> None:
    base, _ = server
    (tmp_path / "m.csv").write_text(f"path,label,split\n{base}/cat.png,cat,test\n")
    result = run(_cfg(tmp_path / "m.csv", tmp_path / "ws"))
    assert result.added == 1 and result.splits == {"test": 1}
