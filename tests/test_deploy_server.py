"""The REST server through real HTTP (uvicorn on a free loopback port): predictions, bad inputs,
the API key, micro-batching under concurrent load, model info, metrics and hot-swap."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings, create_app
from support.deploy import LiveServer, make_workspace, train_run

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server")
    ws = make_workspace(root, per_class=12)
    return export(train_run(ws, "fastcnn"), root / "bundle")


@pytest.fixture(scope="module")
def png(bundle: Path) -> bytes:
    return next((bundle.parents[0] / "images" / "1").glob("*.png")).read_bytes()


def _metric(text: str, name: str) -> dict[str, float]:
    """Prometheus text -> {label string: value} for one metric name."""
    out = {}
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    return out


def test_predict_errors_and_limits(bundle: Path, png: bytes, tmp_path: Path) -> None:
    settings = ServerSettings(bundle=bundle, workspace=tmp_path / "ws", max_request_bytes=64_000, max_pixels=100_000)
    with LiveServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json()["status"] == "ready"
        r = c.post("/v1/predict", files={"file": ("x.png", png)}, params={"top_k": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["prediction_id"]) == 32 and body["label"] in ("0", "1", "2") and len(body["top_k"]) == 2
        r2 = c.post("/v1/predict", json={"image": base64.b64encode(png).decode(), "top_k": 3})
        assert r2.status_code == 200 and r2.json()["top_k"] == body["top_k"] + r2.json()["top_k"][2:]
        assert r2.json()["prediction_id"] != body["prediction_id"]

        def err(r: httpx.Response) -> tuple[int, str]:
            return r.status_code, r.json()["error"]

        assert err(c.post("/v1/predict", files={"file": ("a.png", b"%PDF-1.4 not an image")})) == (415, "not_an_image")
        assert err(c.post("/v1/predict", files={"file": ("t.png", png[: len(png) // 2])})) == (422, "undecodable_image")
        assert err(c.post("/v1/predict", files={"image": ("x.png", png)})) == (422, "missing_field")
        assert err(c.post("/v1/predict", files={"x": ("x.png", png)}, data={"file": "text"})) == (422, "invalid_field")
        assert err(c.post("/v1/predict", files={"file": ("e.png", b"")})) == (400, "empty_file")
        assert err(c.post("/v1/predict", json={"img": "x"})) == (422, "missing_field")
        assert err(c.post("/v1/predict", json={"image": "not base64!"})) == (400, "invalid_base64")
        assert err(c.post("/v1/predict", content=b"{oops", headers={"content-type": "application/json"})) == (
            400,
            "invalid_json",
        )
        assert err(c.post("/v1/predict", content=png, headers={"content-type": "image/png"})) == (
            415,
            "unsupported_content_type",
        )
        assert err(c.post("/v1/predict", files={"file": ("x.png", png)}, params={"top_k": 0})) == (422, "invalid_top_k")
        big = io.BytesIO()
        Image.new("RGB", (400, 400)).save(big, format="PNG")  # 160,000 pixels > the 100,000 cap, small file
        assert err(c.post("/v1/predict", files={"file": ("big.png", big.getvalue())})) == (413, "too_many_pixels")
        huge = os.urandom(100_000)
        assert err(c.post("/v1/predict", files={"file": ("h.png", huge)})) == (413, "request_too_large")
        # The server is still healthy after all of that.
        assert c.post("/v1/predict", files={"file": ("x.png", png)}).status_code == 200

        r = c.post(
            "/v1/predict/batch",
            files=[("files", ("a.png", png)), ("files", ("b.txt", b"hello")), ("files", ("c.png", png))],
        )
        preds = r.json()["predictions"]
        assert r.status_code == 200 and [p.get("error") for p in preds] == [None, "not_an_image", None]
        assert preds[0]["label"] == preds[2]["label"] == body["label"]

        info = c.get("/v1/model").json()
        assert info["classes"] == ["0", "1", "2"] and info["runtime"] == "onnx"
        assert info["metrics"]["parity"]["passed"] is True and info["version"] == body["model_version"]
        spec = c.get("/openapi.json").json()
        assert {"/v1/predict", "/v1/predict/batch", "/v1/feedback", "/v1/model"} <= set(spec["paths"])
        assert "swagger" in c.get("/docs").text.lower()

        metrics = c.get("/metrics").text
        ok = _metric(metrics, "picsift_requests_total")
        assert ok['{method="POST",route="/v1/predict",status="200"}'] >= 3
        assert _metric(metrics, "picsift_input_errors_total")['{code="not_an_image"}'] >= 2
        assert "picsift_request_latency_seconds_bucket" in metrics

    logged = [
        json.loads(line)
        for f in (tmp_path / "ws" / "predictions").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert body["prediction_id"] in {r["prediction_id"] for r in logged}
    assert all(len(r["sha256"]) == 64 for r in logged)


def test_api_key(bundle: Path, png: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSIFT_API_KEY", KEY)  # the env variable is honoured when no key is given
    with (
        LiveServer(create_app(ServerSettings(bundle=bundle, workspace=tmp_path))) as srv,
        httpx.Client(base_url=srv.url) as c,
    ):
        assert c.get("/healthz").status_code == 200
        for path in ("/readyz", "/v1/model", "/metrics", "/openapi.json", "/docs"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"] == "missing_api_key", path
        r = c.post("/v1/predict", files={"file": ("x.png", png)}, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_api_key"
        assert c.post("/v1/admin/reload").status_code == 401
        assert c.post("/v1/predict", files={"file": ("x.png", png)}, headers={"X-API-Key": KEY}).status_code == 200
        r = c.post("/v1/predict", files={"file": ("x.png", png)}, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200


def test_concurrent_requests_are_batched_and_reload_drops_nothing(bundle: Path, png: bytes, tmp_path: Path) -> None:
    settings = ServerSettings(bundle=bundle, workspace=tmp_path, max_batch_size=16, max_wait_ms=100)
    newer = export(
        Path(json.loads((bundle / "bundle.json").read_text())["source_run"]["path"]), tmp_path / "newer", version="v2"
    )
    with (
        LiveServer(create_app(settings)) as srv,
        httpx.Client(base_url=srv.url, timeout=60, limits=httpx.Limits(max_connections=64)) as c,
    ):

        def one(_: int) -> tuple[int, str]:
            r = c.post("/v1/predict", files={"file": ("x.png", png)})
            return r.status_code, r.json().get("model_version", "")

        with ThreadPoolExecutor(24) as pool:
            first = list(pool.map(one, range(48)))
            swap = pool.submit(lambda: c.post("/v1/admin/reload", json={"bundle": str(newer)}))
            second = list(pool.map(one, range(48)))
            assert swap.result().status_code == 200 and swap.result().json()["version"] == "v2"
        assert all(s == 200 for s, _ in first + second)  # nothing dropped across the hot-swap
        assert one(0) == (200, "v2")
        sizes = _metric(c.get("/metrics").text, "picsift_batch_size_bucket")
        count = _metric(c.get("/metrics").text, "picsift_batch_size_count")[""]
        assert count < 97  # fewer model calls than images: requests were grouped
        assert sizes['{le="1.0"}'] < count  # some batch held more than one image
        history = c.get("/v1/model").json()["history"]
        assert [h["version"] for h in history][-1] == "v2" and len(history) == 2
        bad = c.post("/v1/admin/reload", json={"bundle": str(tmp_path / "nope")})
        assert bad.status_code == 409 and c.get("/v1/model").json()["version"] == "v2"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP is POSIX")
def test_cli_serve_reloads_on_sighup(bundle: Path, png: bytes, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = tmp_path / "served"
    import shutil

    shutil.copytree(bundle, served)
    cmd = [
        str(Path(sys.executable).parent / "picsift"),
        "serve",
        str(served),
        "--port",
        str(port),
        "--workspace",
        str(tmp_path / "ws"),
        "--api-key",
        KEY,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url, h = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", headers=h).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.2)
        v1 = httpx.get(f"{url}/v1/model", headers=h).json()["version"]
        meta = json.loads((served / "bundle.json").read_text())
        meta["version"] = "after-sighup"
        (served / "bundle.json").write_text(json.dumps(meta))
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while httpx.get(f"{url}/v1/model", headers=h).json()["version"] != "after-sighup":
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert v1 != "after-sighup"
        r = httpx.post(f"{url}/v1/predict", files={"file": ("x.png", png)}, headers=h)
        assert r.status_code == 200 and r.json()["model_version"] == "after-sighup"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_reload_with_several_workers_refuses_a_bundle_they_would_not_load(bundle: Path, tmp_path: Path) -> None:
    """Each worker process holds a model: swapping only the one answering would serve two models at once."""
    other = tmp_path / "other"
    import shutil

    shutil.copytree(bundle, other)
    settings = ServerSettings(bundle=bundle, workspace=tmp_path / "ws", workers=2)
    with LiveServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/v1/admin/reload", json={"bundle": str(other)})
        assert r.status_code == 409 and r.json()["error"] == "reload_needs_served_folder"
        assert "2 worker processes" in r.json()["detail"] and str(bundle) in r.json()["detail"]
        assert len(c.get("/v1/model").json()["history"]) == 1  # still the first model, in this worker too


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP is POSIX")
def test_reload_with_two_workers_replaces_both_without_dropping_a_request(
    bundle: Path, png: bytes, tmp_path: Path
) -> None:
    import shutil
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = tmp_path / "served"
    shutil.copytree(bundle, served)
    exe = str(Path(sys.executable).parent / "picsift")
    cmd = [exe, "serve", str(served), "--port", str(port), "--workspace", str(tmp_path / "ws"), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.3)
        meta = json.loads((served / "bundle.json").read_text())
        meta["version"] = "both-workers"
        (served / "bundle.json").write_text(json.dumps(meta))
        r = httpx.post(f"{url}/v1/admin/reload", timeout=30)
        assert r.status_code == 202 and r.json()["restarting_workers"] == 2 and r.json()["main_pid"] == proc.pid
        # Keep predicting (a fresh connection each time, so either worker answers) until 12 answers in a row
        # come from the new version: every request is answered 200 meanwhile.
        streak, deadline = 0, time.time() + 120
        while streak < 12:
            p = httpx.post(f"{url}/v1/predict", files={"file": ("x.png", png)}, timeout=60)
            assert p.status_code == 200, p.text
            streak = streak + 1 if p.json()["model_version"] == "both-workers" else 0
            assert time.time() < deadline and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_pixel_caps_are_stated_in_the_servers_terms() -> None:
    """A header that claims more pixels than Pillow opens at all is refused with the server's own cap and the
    claimed size, not Pillow's internal limit (178956970) and its "DOS attack" wording; so is one just over it."""
    from picsift.deploy.server.inputs import check_image_bytes
    from picsift.web.errors import ApiError
    from support.corrupt import absurd_png

    with pytest.raises(ApiError) as e:
        check_image_bytes(absurd_png(100_000, 100_000), max_pixels=40_000_000)
    assert (e.value.status, e.value.code) == (413, "too_many_pixels")
    assert e.value.message == "image is 10000000000 pixels; this server accepts at most 40000000"
    with pytest.raises(ApiError) as e:
        check_image_bytes(absurd_png(7_000, 7_000), max_pixels=40_000_000)
    assert e.value.message == "image is 7000x7000 = 49000000 pixels; this server accepts at most 40000000"
