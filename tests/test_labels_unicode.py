"""One spelling per class: a label is kept in Unicode NFC with its surrounding spaces removed, wherever
it enters (archive folders, manifests, --label, import-labels, the labelling app, feedback, the catalog)."""

from __future__ import annotations

import hashlib
import io
import json
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.errors import ConfigError, LabelError
from picsift.labels_text import normalize_label
from picsift.store import Workspace
from picsift.store.feedback_store import FeedbackStore
from picsift.store.schema import Image as ImageRowOrm
from support.label import app_client
from support.label import make_workspace as make_label_workspace

NFD = "cre\u0300me bru\u0302le\u0301e"  # as macOS stores the folder name: e + combining accents
NFC = "cr\u00e8me br\u00fbl\u00e9e"  # as an editor types it


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


class _NoFlagZipInfo(zipfile.ZipInfo):
    """Writes the name as UTF-8 bytes without the zip's UTF-8 flag, as macOS's Archive Utility does."""

    __slots__ = ()

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 (the standard library's name)
        return self.filename.encode("utf-8"), self.flag_bits & ~0x800


def _zip(path: Path, members: dict[str, bytes], *, utf8_flag: bool) -> Path:
    """A zip as Python writes it (UTF-8 flag set) or as macOS does (UTF-8 bytes, no flag)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name) if utf8_flag else _NoFlagZipInfo(name), data)
    return path


def _import(runner: CliRunner, source: Path, ws: Path, *extra: str) -> dict:
    out = runner.invoke(build_app(), ["import", str(source), "--workspace", str(ws), "--json", *extra])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_normalize_label_forms_and_errors() -> None:
    assert NFD != NFC and unicodedata.normalize("NFC", NFD) == NFC
    assert normalize_label(NFD) == NFC
    assert normalize_label(f"  {NFD}\t\n") == NFC
    assert normalize_label(" cat ") == "cat"
    for bad in ("", "   ", "\u3000", None, 3):
        with pytest.raises(LabelError):
            normalize_label(bad)
    assert issubclass(LabelError, ConfigError)  # CLI exit 2, HTTP 4xx


@pytest.mark.parametrize("utf8_flag", [True, False], ids=["utf8-flag", "macos-no-flag"])
def test_nfd_zip_folder_and_nfc_manifest_are_one_class(tmp_path: Path, utf8_flag: bool) -> None:
    archive = _zip(
        tmp_path / "desserts.zip",
        {
            f"desserts/{NFD}/1.png": _png(1),
            f"desserts/{NFD}/2.png": _png(2),
            f"desserts/{NFD}/3.png": _png(3),
            "desserts/tarte/4.png": _png(4),
        },
        utf8_flag=utf8_flag,
    )
    with zipfile.ZipFile(archive) as zf:  # the archive really holds the decomposed spelling
        flags = {bool(i.flag_bits & 0x800) for i in zf.infolist() if "tarte" not in i.filename}
        assert flags == {utf8_flag}
        raw_names = [i.filename for i in zf.infolist()]
        assert any(NFD in n for n in raw_names) == utf8_flag  # without the flag Python reads cp437 mojibake
    loose = tmp_path / "more"
    loose.mkdir()
    for i in (5, 6):
        (loose / f"{i}.png").write_bytes(_png(i))
    (loose / "7.png").write_bytes(_png(7))
    manifest = loose / "labels.csv"
    manifest.write_text(f"path,label\n5.png,{NFC}\n6.png,  {NFC}  \n7.png, cat \n", encoding="utf-8")
    cat_dir = tmp_path / "cats"
    cat_dir.mkdir()
    (cat_dir / "8.png").write_bytes(_png(8))

    runner = CliRunner()
    ws = tmp_path / "ws"
    first = _import(runner, archive, ws)
    assert first["classes"] == sorted([NFC, "tarte"]) and first["added"] == 4
    second = _import(runner, manifest, ws)
    assert second["classes"] == ["cat", NFC]
    third = _import(runner, cat_dir, ws, "--label", " cat ")
    assert third["classes"] == ["cat"]

    out = runner.invoke(build_app(), ["status", "--workspace", str(ws), "--json"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert info["classes"] == ["cat", NFC, "tarte"]
    per_class: dict[str, int] = {}
    for counts in info["splits"].values():
        for c, n in counts.items():
            per_class[c] = per_class.get(c, 0) + n
    assert per_class == {NFC: 5, "tarte": 1, "cat": 2}  # 3 from the zip + 2 from the manifest
    table = runner.invoke(build_app(), ["status", "--workspace", str(ws)])
    assert table.exit_code == 0 and "3 classes" in table.output
    assert table.output.count(NFC) == 1 and NFD not in table.output


def test_catalog_write_boundary_normalises_every_path(tmp_path: Path) -> None:
    """Rows written straight into the tables (not through a stage) still hold one spelling."""
    ws = Workspace.open(tmp_path / "ws", create=True)
    cat = ws.catalog
    data = _png(1)
    cat.add_images(
        [
            ImageRowOrm(sha256=hashlib.sha256(data).hexdigest(), path=str(tmp_path / f"{i}.png"), label=label)
            for i, label in enumerate([NFD, f" {NFC} "])
        ]
    )
    cat.add_class(f"{NFD}  ")
    assert cat.classes() == [NFC]
    ids = [r.id for r in cat.images()]
    cat.set_label(ids[0], f"\t{NFD}")
    cat.propose_labels([(ids[1], NFD, 0.5)])
    assert {r.label for r in cat.images()} == {NFC}
    assert {p["label"] for p in cat.proposals()} == {NFC}
    assert {e["label"] for e in cat.label_history(ids[0])} == {NFC}
    with pytest.raises(LabelError):
        cat.set_label(ids[0], "  ")
    with pytest.raises(LabelError):  # raised by the column type itself, not wrapped by SQLAlchemy
        cat.add_images([ImageRowOrm(sha256="x", path=str(tmp_path / "x.png"), label=" ")])
    assert len(cat.images(readable=None)) == 2  # the failed write left nothing behind
    assert cat.relabel_class(NFD, f" {NFD.upper()} ") == 2
    assert cat.classes() == [unicodedata.normalize("NFC", NFD.upper())]
    ws.close()


def test_import_labels_file_in_nfd_matches_nfc_class(tmp_path: Path) -> None:
    ws = make_label_workspace(tmp_path, per_class=2, labelled_per_class=0)
    rows = ws.catalog.images()
    ws.catalog.set_label(rows[0].id, NFC)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,label\n" + "".join(f"{r.path},  {NFD} \n" for r in rows[:3]) + f"{rows[3].path},   \n",
        encoding="utf-8",
    )
    out = CliRunner().invoke(build_app(), ["import-labels", str(labels), "--workspace", str(ws.root), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert (report["read"], report["applied"], report["unchanged"], report["conflicts"]) == (3, 2, 1, [])
    assert ws.catalog.classes() == [NFC]
    assert [r.label for r in ws.catalog.images()][:4] == [NFC, NFC, NFC, None]
    ws.close()


def test_label_app_new_class_rename_and_label_store_nfc(tmp_path: Path) -> None:
    ws = make_label_workspace(tmp_path, per_class=2, labelled_per_class=1)
    with app_client(ws) as c:
        made = c.post("/api/classes", json={"name": f"  {NFD} "})
        assert made.status_code == 200, made.text
        assert [x["name"] for x in made.json()] == ["0", "1", "2", NFC]
        assert c.post("/api/classes", json={"name": "   "}).status_code == 400
        ids = [r.id for r in ws.catalog.images()]
        labelled = c.post("/api/labels", json={"image_ids": ids[:2], "label": NFD})
        assert labelled.status_code == 200, labelled.text
        assert {a["label"] for a in labelled.json()["applied"]} == {NFC}
        listing = {x["name"]: x["count"] for x in c.get("/api/classes").json()}
        assert listing[NFC] == 2 and len(listing) == 4
        shown = c.get("/api/images", params={"label": NFD, "view": "labeled"}).json()
        assert sorted(i["id"] for i in shown["items"]) == ids[:2]
        renamed = c.post("/api/classes/rename", json={"old": NFD, "new": f" {NFD.replace('cre', 'Cre')} "})
        assert renamed.status_code == 200, renamed.text
        want = unicodedata.normalize("NFC", NFD.replace("cre", "Cre"))
        assert renamed.json()["changed"] == 2
        assert [x["name"] for x in renamed.json()["classes"]] == ["0", "1", "2", want]
        merged = c.post("/api/classes/merge", json={"sources": [unicodedata.normalize("NFD", want)], "target": "0"})
        assert merged.status_code == 200 and merged.json()["changed"] == 2
        assert [x["name"] for x in merged.json()["classes"]] == ["0", "1", "2"]
        assert c.post("/api/labels", json={"image_ids": ids[:1], "label": "  "}).status_code == 400
    ws.close()


def test_feedback_label_nfd_is_stored_nfc(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    store = FeedbackStore(ws)
    item = store.add(f" {NFD} ", image=_png(1))
    assert item.label == NFC
    with pytest.raises(LabelError, match="non-empty"):
        store.add(" \t ", image=_png(2))
    accepted = store.accept([item.id])[0]
    assert ws.catalog.image(accepted.image_id).label == NFC and ws.catalog.classes() == [NFC]
    ws.close()


def test_workspace_written_before_normalisation_is_merged_once(tmp_path: Path) -> None:
    """An older catalog holding both spellings (as earlier picsift wrote it) shows one class when opened."""
    import sqlite3

    ws = make_label_workspace(tmp_path, per_class=2, labelled_per_class=0)
    ids = [r.id for r in ws.catalog.images()]
    ws.close()
    db = sqlite3.connect(tmp_path / "ws" / "catalog.sqlite")
    with db:
        db.execute("DELETE FROM meta WHERE key = 'labels_normalized'")
        db.execute("DROP TABLE alembic_version")  # earlier picsift recorded no migration revision
        for image_id, label in zip(ids[:4], [NFD, NFD, NFC, " cat "], strict=True):
            db.execute("UPDATE images SET label = ?, label_version = 1 WHERE id = ?", (label, image_id))
            db.execute(
                "INSERT INTO labels (image_id, label, status, origin, annotator, created_at) "
                "VALUES (?, ?, 'accepted', 'import', 'old', '2024-01-01 00:00:00')",
                (image_id, label),
            )
        db.executemany("INSERT INTO classes (name, created_at) VALUES (?, '2024-01-01')", [(NFD,), (NFC,), (" cat ",)])
    db.close()

    ws = Workspace.open(tmp_path / "ws")
    assert ws.catalog.classes() == ["cat", NFC]
    assert [r.label for r in ws.catalog.images()][:4] == [NFC, NFC, NFC, "cat"]
    assert {e["label"] for e in ws.catalog.label_history(ids[0])} == {NFC}
    assert ws.catalog.relabel_class(NFC, "brulee") == 3  # the merged class is found under either spelling
    ws.close()
