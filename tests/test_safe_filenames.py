"""User text never becomes a path outside its folder: labels, class names, names inside archives, run
names and names from URLs all go through `picsift.filenames`, and each writer is tried with the same
hostile names (`..`, `.`, `/`, `\\`, NUL, `CON`, a 300-character name, `Cat` next to `cat`)."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import ImportConfig
from picsift.curate import export_clean
from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings, create_app
from picsift.errors import UnsafePathError
from picsift.filenames import WINDOWS_RESERVED, UniqueNames, inside, safe_filename, unique_names
from picsift.ingest import run as run_import
from picsift.ingest.urls import url_file_name
from picsift.runs import new_run_dir
from picsift.store import Workspace
from support.deploy import LiveServer, make_workspace, train_run
from support.label import make_workspace as make_label_workspace

LONG = "x" * 300
HOSTILE = ["..", ".", "/", "\\", "\x00", "CON", LONG, "Cat", "cat"]


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def _files(root: Path) -> set[Path]:
    """Every file under `root`, but the catalog's SQLite journal files (opening a workspace makes them)."""
    found = {Path(d) / f for d, _, names in os.walk(root) for f in names}
    return {p for p in found if not p.name.startswith(("catalog.sqlite-wal", "catalog.sqlite-shm"))}


def _assert_portable(name: str) -> None:
    assert name not in ("", ".", "..")
    assert not any(ch in name for ch in '/\\\x00<>:"|?*') and all(ord(ch) >= 32 for ch in name)
    assert name.split(".")[0].rstrip(" ").upper() not in WINDOWS_RESERVED
    assert name == name.strip() and not name.endswith(".")
    assert len(name.encode("utf-8")) <= 255


def test_safe_filename_rules(tmp_path: Path) -> None:
    names = [safe_filename(t, fallback="unnamed") for t in HOSTILE]
    for name in names:
        _assert_portable(name)
    assert names[:6] == ["unnamed", "unnamed", "_", "_", "_", "_CON"]
    assert safe_filename("con.txt") == "_con.txt" and safe_filename("LPT9.tar.gz") == "_LPT9.tar.gz"
    assert safe_filename("COM1 .jpg") == "_COM1 .jpg" and safe_filename("console") == "console"
    assert safe_filename("trailing. . ") == "trailing" and safe_filename(" spaced ") == "spaced"
    assert safe_filename(".hidden") == ".hidden" and safe_filename(".hidden", allow_hidden=False) == "_hidden"
    assert safe_filename("cre\u0300me") == "cr\u00e8me"  # NFC: one name on APFS and ext4 alike
    assert safe_filename("caf\udce9.png") == "caf%E9.png"  # undecodable bytes of a Linux file name
    long_jpg = safe_filename(LONG + ".jpg")
    assert long_jpg.endswith(".jpg") and len(long_jpg.encode()) == 255
    other = safe_filename(LONG[:-1] + "y.jpg")
    assert other != long_jpg and other.endswith(".jpg")  # the hash keeps two long names apart
    wide = safe_filename("\u00e9" * 300)  # 600 bytes, cut on a character boundary
    assert len(wide.encode()) <= 255 and wide.encode().decode() == wide
    with pytest.raises(ValueError):
        safe_filename("..", fallback="..")
    for name in names:  # and each is a real, single file inside the folder
        path = inside(tmp_path, name)
        path.write_bytes(b"x")
        assert path.parent == tmp_path


def test_unique_names_are_distinct_ignoring_case_and_order() -> None:
    mapping = unique_names(HOSTILE + ["a/b", "a_b", "CAT"], fallback="unnamed")
    folded = [n.casefold() for n in mapping.values()]
    assert len(set(folded)) == len(mapping) == len(set(HOSTILE)) + 3
    assert mapping["CAT"] == "CAT" and mapping["Cat"].startswith("Cat-") and mapping["cat"].startswith("cat-")
    assert mapping == unique_names(reversed(HOSTILE + ["a/b", "a_b", "CAT"]), fallback="unnamed")
    names = UniqueNames(taken=["feedback.csv"])
    assert names("Feedback.csv") != "Feedback.csv" and names("cat") == names("cat")
    assert len({names.new("a.jpg"), names.new("a.jpg"), names.new("A.jpg")}) == 3


def test_inside_refuses_escapes_and_links(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    for parts in (("..", "x"), ("/etc",), ("link", "x"), (".",)):
        with pytest.raises(UnsafePathError):
            inside(root, *parts)
    assert inside(root, "a", "b") == root / "a" / "b"


def test_url_and_run_names_stay_inside(tmp_path: Path) -> None:
    for url in ("http://h/../../etc/passwd.png", "http://h/%2e%2e%2fCON.jpg", "http://h/" + LONG + ".png"):
        name = url_file_name(url, None)
        _assert_portable(name)
        assert len(name) <= 40 and name.endswith((".png", ".jpg"))
    ws = Workspace.open(tmp_path / "ws", create=True)
    made = [new_run_dir(ws, name).path for name in HOSTILE]
    for run_dir in made:
        assert run_dir.resolve().parent == ws.runs_dir.resolve()
        _assert_portable(run_dir.name)
    assert len({p.name.casefold() for p in made}) == len(HOSTILE)
    ws.close()


def test_export_clean_with_hostile_class_names(tmp_path: Path) -> None:
    ws = make_label_workspace(tmp_path, per_class=4, labelled_per_class=0)
    rows = ws.catalog.images()
    labels = {r.id: HOSTILE[i % len(HOSTILE)] for i, r in enumerate(rows)}
    for image_id, label in labels.items():
        ws.catalog.set_label(image_id, label)
    before = _files(tmp_path)
    dest = tmp_path / "D"
    out = export_clean(ws.root, dest, by_split=True)
    written = _files(tmp_path) - before
    real_dest = dest.resolve()
    assert written and all(p.resolve().is_relative_to(real_dest) for p in written)
    assert out["images"] == len(rows) == len(written)
    class_dirs = [p for p in (dest / "train").iterdir() if p.is_dir()]
    assert len(class_dirs) == len(set(labels.values())) == len({p.name.casefold() for p in class_dirs})
    for d in class_dirs:
        _assert_portable(d.name)
    counts = sorted(len(list(d.iterdir())) for d in class_dirs)
    expected = sorted(list(labels.values()).count(label) for label in set(labels.values()))
    assert counts == expected
    ws.close()


def test_archive_members_with_hostile_names(tmp_path: Path) -> None:
    members = {
        "../escape.png": _png(0),
        "./dot/1.png": _png(1),
        "back\\slash/2.png": _png(2),
        "CON/3.png": _png(3),
        "aux.png": _png(4),
        "ctl\x01char/5.png": _png(5),
        f"{LONG}/6.png": _png(6),
        f"long/{LONG}.png": _png(7),
        "Cat/8.png": _png(8),
        "cat/9.png": _png(9),
        "trailing. /10.png": _png(10),
    }
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    before = _files(tmp_path)
    ws_root = tmp_path / "ws"
    result = run_import(ImportConfig(source=str(archive), workspace=ws_root))
    written = {p for p in _files(tmp_path) - before if p.suffix == ".png"}
    extracted = ws_root.resolve() / "files" / "archives"
    assert all(p.resolve().is_relative_to(extracted) for p in written)
    assert not (tmp_path / "escape.png").exists()
    assert result.added == len(written) == len(members) - 1  # `..` refused, reported
    assert [i.path for i in result.skipped if "unsafe" in i.reason] == [f"{archive}!../escape.png"]
    for p in written:
        for part in p.relative_to(extracted).parts:
            _assert_portable(part)
    classes = result.classes
    assert len(classes) == len({c.casefold() for c in classes}) == 9  # every folder a class of its own
    assert "Cat" in classes and any(c.startswith("cat-") for c in classes) and "_CON" in classes
    assert {"back", "dot", "trailing"} <= set(classes) and "ctl_char" in classes


def test_feedback_label_dotdot_export_end_to_end(tmp_path: Path) -> None:
    """POST /v1/feedback (no API key) with hostile labels, then `picsift feedback export --out D`."""
    ws_root = make_workspace(tmp_path / "work", per_class=8)
    bundle = export(train_run(ws_root, "fastcnn"), tmp_path / "work" / "bundle")
    labels = [*HOSTILE[:6], "\u00e9" * 150, "Cat", "cat", "feedback.csv"]  # 300 bytes
    with (
        LiveServer(create_app(ServerSettings(bundle=bundle, workspace=ws_root))) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        for i, label in enumerate(labels):
            r = c.post("/v1/feedback", json={"image": base64.b64encode(_png(100 + i)).decode(), "label": label})
            assert r.status_code == 201, (label, r.text)
            assert r.json()["label"] == label
        # One limit for every label (labels_text.MAX_LABEL_CHARS): a 300-character class, which a folder name
        # may give, can be named in feedback too; beyond 1,000 characters is refused.
        too_long = c.post("/v1/feedback", json={"image": base64.b64encode(_png(1)).decode(), "label": "x" * 1001})
        assert too_long.status_code == 422 and "at most 1000 characters" in too_long.json()["detail"]

    before = _files(tmp_path)
    dest = tmp_path / "D"
    out = CliRunner().invoke(
        build_app(),
        ["feedback", "export", "--workspace", str(ws_root), "--out", str(dest), "--status", "all", "--json"],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["rows"] == summary["images"] == len(labels)
    written = _files(tmp_path) - before
    real_dest = dest.resolve()
    outside = [p for p in written if not p.resolve().is_relative_to(real_dest)]
    assert outside == []
    images = [p for p in written if p.suffix == ".png"]
    assert len(images) == len(labels) and (dest / "feedback.csv").is_file()
    folders = {p.parent for p in images}
    assert len(folders) == len(labels) == len({f.name.casefold() for f in folders})
    assert all(f.parent == dest for f in folders)
    for f in folders:
        _assert_portable(f.name)
    assert (dest / "feedback.csv").read_text().count("\n") == len(labels) + 1


def test_export_clean_gives_the_plain_folder_name_to_the_larger_of_two_clashing_classes(tmp_path: Path) -> None:
    """'bird' (most images) and 'Bird' (a spelling slip) clash on a case-insensitive disk: the real class keeps
    `bird/`, the slip gets the tag (sorted order used to give `Bird/` the plain name, being upper case)."""
    ws = make_label_workspace(tmp_path, per_class=4, labelled_per_class=0)
    rows = ws.catalog.images()
    for i, r in enumerate(rows):
        ws.catalog.set_label(r.id, "Bird" if i == 0 else "bird")
    out = export_clean(ws.root, tmp_path / "D")
    ws.close()
    folders = {p.name: len(list(p.iterdir())) for p in (tmp_path / "D").iterdir() if p.is_dir()}
    assert folders["bird"] == len(rows) - 1 and out["images"] == len(rows)
    (slip,) = [name for name in folders if name != "bird"]
    assert slip.startswith("Bird-") and folders[slip] == 1
