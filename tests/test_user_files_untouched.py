"""No user file is ever modified: a whole pipeline (import, clean and its exclusions, label edits through the
labelling app's HTTP API, training, export, serving with a prediction and feedback over HTTP, predict,
export-clean) leaves the folder of pictures it started from exactly as it was: every file's bytes, size,
mode and modification time, every folder's listing and time, every link's target."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.deploy.server import ServerSettings
from picsift.deploy.server import create_app as create_server
from picsift.label_app import LabelSettings
from picsift.label_app import create_app as create_label_app
from support.deploy import LiveServer
from support.images import texture, write_digits

runner = CliRunner()
TOKEN = "t0ken"
KEY = "k3y"


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under `root` (links not followed): a file's sha256, size, mode and mtime; a folder's sorted
    listing, mode and mtime; a link's target and its own mtime."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        st = d.lstat()
        out[str(d.relative_to(root))] = ("dir", sorted(os.listdir(d)), st.st_mode, st.st_mtime_ns)
        for name in dirnames + filenames:
            p = d / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[str(p.relative_to(root))] = ("link", os.readlink(p), st.st_mtime_ns)
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[str(p.relative_to(root))] = ("file", digest, st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def jpeg_with_exif(path: Path, seed: int, orientation: int) -> None:
    """A small photo-like JPEG carrying EXIF (orientation, camera make, date): what a phone writes."""
    img = Image.fromarray(texture(seed, size=64))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "picsift-test-camera"
    exif[0x0132] = "2024:05:01 12:00:00"
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=85, exif=exif.tobytes())


def user_folder(tmp_path: Path) -> tuple[Path, Path]:
    """The user's pictures (digits PNGs per class, EXIF JPEGs, an exact copy, a hidden folder, links inside and
    out, a text file) and a folder outside it that a link points to."""
    src = write_digits(tmp_path / "pictures", per_class=12, classes=3)
    for i, orientation in enumerate((1, 6, 8)):
        jpeg_with_exif(src / f"IMG_{i:04d}.JPG", seed=i, orientation=orientation)
    first = sorted((src / "0").glob("*.png"))[0]
    (src / "0" / "copy-of-first.png").write_bytes(first.read_bytes())
    (src / ".hidden").mkdir()
    (src / ".hidden" / "secret.png").write_bytes(first.read_bytes())
    (src / "notes.txt").write_text("my notes\n")
    elsewhere = write_digits(tmp_path / "elsewhere", per_class=3, classes=3, seed=7) / "2"
    (src / "2" / "alias.png").symlink_to(first)  # a link to a picture inside the folder
    (src / "2" / "far").symlink_to(elsewhere, target_is_directory=True)  # a link to a folder outside it
    # Times in the past, so that a rewrite within the same second would still show.
    for p in sorted(src.rglob("*"), key=lambda q: -len(q.parts)):
        if not p.is_symlink():
            os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return src, elsewhere.parent


def cli(*args: str) -> dict[str, Any]:
    result = runner.invoke(build_app(), [*args, "--json"])
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def png_bytes(path: Path) -> bytes:
    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def label_through_the_app(ws: Path) -> None:
    app = create_label_app(LabelSettings(workspace=ws, token=TOKEN, annotator="alice"))
    headers = {"X-Picsift-Token": TOKEN, "X-Picsift-Client": "test"}
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, headers=headers, timeout=60) as c:
        unlabeled = c.get("/api/images", params={"view": "unlabeled"}).json()["items"]
        assert len(unlabeled) == 3  # the phone pictures, loose at the top
        for item in unlabeled:
            assert c.get(f"/api/images/{item['id']}/thumb").status_code == 200
            assert c.get(f"/api/images/{item['id']}/full").status_code == 200
        ids = [i["id"] for i in unlabeled]
        r = c.post("/api/labels", json={"image_ids": ids, "label": "1"})
        assert r.status_code == 200, r.text
        one = c.get(f"/api/images/{ids[0]}").json()
        undo = c.post(f"/api/images/{ids[0]}/undo", json={"expected_version": one["version"]})
        assert undo.status_code == 200, undo.text
        assert c.post("/api/labels", json={"image_ids": [ids[0]], "label": "2"}).status_code == 200


def accept_feedback_in_the_app(ws: Path) -> None:
    app = create_label_app(LabelSettings(workspace=ws, token=TOKEN, annotator="alice"))
    headers = {"X-Picsift-Token": TOKEN, "X-Picsift-Client": "test"}
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, headers=headers, timeout=60) as c:
        items = c.get("/api/feedback").json()["items"]
        assert len(items) == 2
        for it in items:
            assert c.get(f"/api/feedback/{it['id']}/image").status_code == 200
        r = c.post("/api/feedback/accept", json={"ids": [i["id"] for i in items], "confirm": True})
        assert r.status_code == 200, r.text


def predict_and_feedback_over_http(bundle: Path, ws: Path, picture: Path) -> None:
    app = create_server(ServerSettings(bundle=bundle, workspace=ws, api_key=KEY))
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, headers={"X-API-Key": KEY}, timeout=60) as c:
        pred = c.post("/v1/predict", files={"file": (picture.name, picture.read_bytes())})
        assert pred.status_code == 200, pred.text
        fb = c.post("/v1/feedback", json={"prediction_id": pred.json()["prediction_id"], "label": "0"})
        assert fb.status_code == 201, fb.text
        upload = c.post("/v1/feedback", data={"label": "1"}, files={"file": (picture.name, png_bytes(picture))})
        assert upload.status_code == 201, upload.text


def test_the_snapshot_sees_a_rewrite_a_new_file_and_a_touched_time(tmp_path: Path) -> None:
    src, _ = user_folder(tmp_path)
    before = snapshot(src)
    picture = sorted((src / "0").glob("*.png"))[1]
    data = picture.read_bytes()
    picture.write_bytes(data)  # same bytes, new time
    assert snapshot(src) != before
    os.utime(picture, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert snapshot(src) == before
    (src / "1" / "new.png").write_bytes(data)
    assert snapshot(src) != before


@pytest.mark.slow  # about 40 s: a real import, clean, training, ONNX export and two servers
def test_a_whole_pipeline_leaves_the_users_folder_exactly_as_it_was(tmp_path: Path) -> None:
    src, elsewhere = user_folder(tmp_path)
    before, before_elsewhere = snapshot(src), snapshot(elsewhere)
    ws = str(tmp_path / "ws")

    imported = cli("import", str(src), "-w", ws, "--seed", "1")
    assert imported["added"] == 36 + 3 + 3 and imported["duplicates"] == 2  # the copy and the alias
    cli("clean", "-w", ws, "--checks", "duplicates,quality,imbalance", "--extractor", "color-hist")
    applied = cli("clean", "-w", ws, "--apply", "--exclude-near-duplicates", "--exclude-quality")
    assert applied["excluded"] > 0
    label_through_the_app(Path(ws))
    cli("train", "-w", ws, "--model", "fastcnn", "--epochs", "1", "--device", "cpu", "--no-calibrate")
    exported = cli("export", "-w", ws, "--samples", "8")
    bundle = Path(exported["bundle"])
    predict_and_feedback_over_http(bundle, Path(ws), sorted((src / "1").glob("*.png"))[0])
    accept_feedback_in_the_app(Path(ws))
    cli("predict", str(src), "-w", ws)
    clean_copy = cli("export-clean", str(tmp_path / "clean"), "-w", ws)
    assert clean_copy["images"] > 0

    assert snapshot(src) == before
    assert snapshot(elsewhere) == before_elsewhere
