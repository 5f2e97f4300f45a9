"""No file outside the workspace is read through the web apps: a run named by a client is a run of the workspace
(never a folder path), a link planted in the workspace's caches or feedback images is not followed out, feedback
uploads keep to their size and pixel caps and are stored under a name of their content, never the client's."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from picsift.deploy.server import ServerSettings
from picsift.deploy.server import create_app as create_server
from picsift.label.thumbs import cached_thumbnail
from picsift.store import Workspace
from picsift.store.feedback import Feedback
from picsift.store.feedback_store import FeedbackStore
from support.deploy import make_workspace as make_trained_workspace
from support.deploy import train_run
from support.label import app_client, make_workspace


@pytest.fixture
def ws(tmp_path: Path):
    w = make_workspace(tmp_path / "here", per_class=4, labelled_per_class=1)
    yield w
    w.close()


def png(size: tuple[int, int] = (8, 8), seed: int = 0, flat: bool = False) -> bytes:
    """A PNG of random pixels, or with `flat` of one colour (a few hundred bytes however large)."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((size[1], size[0], 3), np.uint8) if flat else rng.integers(0, 255, (size[1], size[0], 3))
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def marker_jpeg(path: Path) -> Path:
    """A JPEG outside the workspace, recognisable by its size (7 x 5 px) and comment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (7, 5), (200, 10, 10)).save(path, "JPEG", comment=b"SECRET-MARKER")
    return path


# ---- a run named by a client ------------------------------------------------------------------------------------


def test_the_label_app_reads_runs_of_its_workspace_only(tmp_path: Path, ws: Workspace) -> None:
    other = make_trained_workspace(tmp_path / "other", per_class=6)
    outside = train_run(other)  # a real run, outside the app's workspace
    relative = os.path.relpath(outside, ws.runs_dir)
    with app_client(ws) as c:
        for run in (str(outside), relative, "../" + relative, str(outside.parent), "/", ".."):
            for path in ("/api/images", "/api/images/1", "/api/queue"):
                r = c.get(path, params={"run": run})
                assert r.status_code == 404, (path, run, r.status_code, r.text[:200])
                assert r.json()["error"] == "RunNotFoundError" and "no run" in r.json()["detail"]
        assert c.get("/api/images").json().get("run") is None  # nothing was loaded from outside
        shutil.copytree(outside, ws.runs_dir / outside.name)  # the same run, now the workspace's own
        for run in (outside.name, outside.name[:12]):
            page = c.get("/api/images", params={"run": run})
            assert page.status_code == 200 and page.json()["run"] == outside.name, run
            assert all(i["prediction"] for i in page.json()["items"])


# ---- links planted in the workspace ------------------------------------------------------------------------------


def test_a_link_in_the_static_folder_leading_out_is_not_served(
    tmp_path: Path, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from picsift.label_app.routers import static

    secret = tmp_path / "outside" / "secret.js"
    secret.parent.mkdir()
    secret.write_text("// SECRET-MARKER\n")
    folder = tmp_path / "static"
    shutil.copytree(static.STATIC, folder)
    (folder / "js" / "evil.js").symlink_to(secret)
    (folder / "js" / "out").symlink_to(secret.parent, target_is_directory=True)
    (folder / "js" / "fine.js").symlink_to(folder / "js" / "api.js")  # a link that stays inside is served
    monkeypatch.setattr(static, "STATIC", folder)
    with app_client(ws) as c:
        for name in ("js/evil.js", "js/out/secret.js"):
            r = c.get(f"/static/{name}")
            assert r.status_code == 404 and b"SECRET-MARKER" not in r.content, name
        assert c.get("/static/js/fine.js").text == (folder / "js" / "api.js").read_text()


def test_a_link_in_the_thumbnail_cache_is_replaced_not_followed(tmp_path: Path, ws: Workspace) -> None:
    secret = marker_jpeg(tmp_path / "outside" / "secret.jpg")
    row = ws.catalog.image(1)
    planted = ws.cache_dir / "thumbs" / f"{row.sha256}-128.jpg"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(secret)
    with app_client(ws, thumb_size=128) as c:
        r = c.get("/api/images/1/thumb")
    assert r.status_code == 200 and b"SECRET-MARKER" not in r.content
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (16, 16)  # the catalog image's own thumbnail
    assert not planted.is_symlink() and secret.read_bytes().count(b"SECRET-MARKER") == 1  # the outside file intact


def test_a_thumbnail_name_comes_from_a_hash_only(tmp_path: Path, ws: Workspace) -> None:
    secret = marker_jpeg(tmp_path / "secret-128.jpg")
    row = ws.catalog.image(1)
    tampered = dataclasses.replace(row, sha256=os.path.relpath(tmp_path / "secret", ws.cache_dir / "thumbs"))
    path = cached_thumbnail(ws.cache_dir, tampered, 128)
    assert path.resolve().is_relative_to((ws.cache_dir / "thumbs").resolve()) and path != secret
    assert b"SECRET-MARKER" not in path.read_bytes()


def test_feedback_images_are_read_from_inside_the_workspace_only(tmp_path: Path, ws: Workspace) -> None:
    secret = marker_jpeg(tmp_path / "outside" / "secret.jpg")
    store = FeedbackStore(ws)
    linked = store.add("1", image=png())
    assert linked.image_path is not None
    kept = ws.root / linked.image_path
    kept.unlink()
    kept.symlink_to(secret)  # the stored image replaced by a link out of the workspace
    tampered = store.add("2", image=png(seed=1))
    with ws.catalog.session() as s:  # a row whose path was edited to point outside
        row = s.get(Feedback, tampered.id)
        assert row is not None
        row.image_path = os.path.relpath(secret, ws.root)
    with app_client(ws) as c:
        for item in (linked, tampered):
            r = c.get(f"/api/feedback/{item.id}/image")
            assert r.status_code == 404 and "missing from the workspace" in r.json()["detail"], item.id
            accept = c.post("/api/feedback/accept", json={"ids": [item.id], "confirm": True})
            assert accept.status_code == 409 and "outside the workspace" in str(accept.json()), accept.text
    assert not [r for r in ws.catalog.images(include_excluded=True) if "outside" in r.path]
    out = FeedbackStore(ws).export(tmp_path / "export", status=None)
    assert out["images"] == 0 and not list((tmp_path / "export").rglob("*.jpg"))


# ---- feedback uploads to the model server -------------------------------------------------------------------------


def server(tmp_path: Path, **settings: object) -> TestClient:
    """The model server without a model (no lifespan): feedback by upload needs none."""
    app = create_server(ServerSettings(bundle=tmp_path / "bundle", workspace=tmp_path / "sws", **settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://127.0.0.1:8000")


def test_feedback_uploads_keep_to_the_caps_and_are_named_by_their_content(tmp_path: Path) -> None:
    c = server(tmp_path, max_request_bytes=20_000, max_pixels=10_000)
    sws = tmp_path / "sws"

    def post(name: str, data: bytes, label: str = "cat") -> tuple[int, str]:
        r = c.post("/v1/feedback", data={"label": label}, files={"file": (name, data)})
        return r.status_code, r.json().get("error", "")

    assert post("big.png", png((101, 100), flat=True)) == (413, "too_many_pixels")
    assert post("huge.png", png((20, 20)) + b"\0" * 30_000) == (413, "request_too_large")
    assert post("notes.png", b"just text, not a picture") == (415, "not_an_image")
    assert post("cut.png", png()[:40]) == (422, "undecodable_image")
    assert post("ok.png", png(), label="") == (422, "invalid_field")
    assert not list(sws.rglob("*.png"))  # nothing refused was kept
    for i, hostile in enumerate(
        ("../../escaped.png", "/tmp/abs.png", "..\\..\\win.png", "a/../../b.png", ".hidden.png")
    ):
        status, _ = post(hostile, png(seed=10 + i))
        assert status == 201, hostile
    kept = sorted(p.relative_to(sws) for p in sws.rglob("*") if p.is_file() and p.suffix == ".png")
    assert len(kept) == 5
    assert all(p.parts[:2] == ("feedback", "images") and len(p.stem) == 64 for p in kept)
    assert not list(tmp_path.rglob("escaped.png")) and not Path("/tmp/abs.png").exists()
    assert not [p for p in tmp_path.rglob("*.png") if not p.is_relative_to(sws)]
