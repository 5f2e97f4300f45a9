"""The clean stage end to end on a tiny workspace: findings, report, apply/undo round trip, export, CLI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import CleanConfig
from picsift.curate import ApplyOptions, apply, export_clean, run, undo
from picsift.store import Workspace
from picsift.store.schema import Image as ImageRecord
from support.images import jpeg_crop_copy, texture


def make_workspace(tmp: Path) -> tuple[Path, dict[str, int]]:
    """40 textures in two colour-distinct classes plus planted problems; returns (workspace, names->ids)."""
    files = tmp / "files"
    files.mkdir()
    pics: list[tuple[str, np.ndarray | bytes, str]] = []
    for i in range(40):
        cls = "red" if i % 2 == 0 else "blue"
        a = texture(i).astype(np.int32)
        a[..., 0 if cls == "red" else 2] += 90
        pics.append((f"{cls}{i}", np.clip(a, 0, 255).astype(np.uint8), cls))
    originals = {name: arr for name, arr, _ in pics}
    pics.append(("copy_of_red4", jpeg_crop_copy(originals["red4"], quality=85), "red"))  # type: ignore[arg-type]
    blurred = np.asarray(Image.fromarray(originals["blue5"]).filter(ImageFilter.GaussianBlur(3)))  # type: ignore[arg-type]
    pics.append(("blurred", blurred, "blue"))
    pics.append(("black", np.zeros((64, 64, 3), np.uint8), "red"))
    pics.append(("corrupt", b"\xff\xd8\xff\xe0 not really a jpeg", "blue"))
    ws = Workspace.open(tmp / "ws", create=True)
    records = []
    for name, data, _ in pics:
        path = files / (name + (".jpg" if isinstance(data, bytes) else ".png"))
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            Image.fromarray(data).save(path)
        raw = path.read_bytes()
        ok = not isinstance(data, bytes)
        records.append(
            ImageRecord(
                sha256=hashlib.sha256(raw).hexdigest(),
                path=str(path),
                byte_size=len(raw),
                width=64 if ok else None,
                height=64 if ok else None,
                format="PNG" if ok else None,
                mode="RGB" if ok else None,
                readable=ok,
                error=None if ok else "corrupt image: cannot identify",
                split="test" if name == "blue9" else "train",
            )  # fmt: skip
        )
    ws.catalog.add_images(records)
    ids = {}
    for r in ws.catalog.images(readable=None):
        name = Path(r.path).stem
        ids[name] = r.id
        label = next(c for n, _, c in pics if n == name)
        ws.catalog.set_label(r.id, "blue" if name == "red12" else label, origin="import")  # red12 mislabelled
    ws.close()
    return tmp / "ws", ids


def test_clean_finds_planted_problems_and_writes_report(tmp_path: Path) -> None:
    ws, ids = make_workspace(tmp_path)
    # Hand features: these classes differ by colour on synthetic textures, what the hand descriptors capture
    # (tests/test_curate_embedding.py checks the pretrained embedding on real photos).
    result = run(CleanConfig(workspace=ws, outlier_z=6.0, extractor="hand"))
    found = {(f.kind, f.image_ids) for f in result.findings}
    assert ("near_duplicate", (ids["red4"], ids["copy_of_red4"])) in found
    assert ("blurry", (ids["blurred"],)) in found
    assert ("too_dark", (ids["black"],)) in found
    assert ("unreadable", (ids["corrupt"],)) in found
    label = [f for f in result.findings if f.kind == "label_issue"]
    assert [f.image_ids for f in label] == [(ids["red12"],)]
    assert label[0].details["suggested_label"] == "red"
    doc = json.loads(result.findings_path.read_text())
    # the blurred copy is also, correctly, a near duplicate of its original (the sharper copy is kept)
    assert ("near_duplicate", (ids["blue5"], ids["blurred"])) in found
    assert doc["label_model"]["cv_agreement"] > 0.9 and not doc["label_model"]["weak"]
    assert doc["label_model"]["selection"]["rule"] == "both" and doc["label_model"]["selection"]["flagged"] == 1
    assert doc["embedding"] == {"extractor": "hand", "pretrained": False, "text": "hand features: hand (chosen)"}
    assert doc["counts"]["near_duplicate"] == 2 and len(doc["findings"]) == len(result.findings)
    page = result.report_path.read_text()
    assert page.count("data:image/jpeg;base64,") >= 5 and "<script>" in page and "near_duplicate" in page
    # self-contained: nothing loaded from the network (the only http links are to the local label app)
    assert re.findall(r"https?://[^'\"]*", page) and all(
        u.startswith("http://127.0.0.1:8765/") for u in re.findall(r"https?://[^'\"]*", page)
    )


def test_apply_undo_round_trip_and_export(tmp_path: Path) -> None:
    ws, ids = make_workspace(tmp_path)
    run(CleanConfig(workspace=ws, checks=("duplicates", "quality"), extractor="hand"))
    cat = Workspace.open(ws).catalog
    before = {r.id for r in cat.training_images("train")}
    res = apply(ws, ApplyOptions(near_duplicates=True, quality=True))
    assert res["action_id"] is not None
    after = {r.id for r in cat.training_images("train")}
    assert before - after == {ids["copy_of_red4"], ids["blurred"], ids["black"]}
    reasons = {e["image_id"]: e["reason"] for e in cat.exclusions()}
    assert reasons[ids["copy_of_red4"]] == "near duplicate" and reasons[ids["black"]] == "low information"
    assert cat.summary()["excluded"] == 3
    # applying again excludes nothing new and records no empty action
    assert apply(ws, ApplyOptions(near_duplicates=True, quality=True))["action_id"] is None

    out = export_clean(ws, tmp_path / "clean")
    exported = sorted(p.relative_to(tmp_path / "clean").as_posix() for p in (tmp_path / "clean").rglob("*.png"))
    assert len(exported) == out["images"] == len(after) + 1  # + the test-split image
    assert "red/red4.png" in exported and not any("copy_of" in p or "blurred" in p for p in exported)
    assert out["hard_links"] + out["copies"] == out["images"]

    back = undo(ws)
    assert back["undone_action_id"] == res["action_id"] and back["restored"] == 3
    assert {r.id for r in cat.training_images("train")} == before
    assert cat.summary()["excluded"] == 0


def test_cli_clean_apply_undo_json(tmp_path: Path) -> None:
    ws, ids = make_workspace(tmp_path)
    cli = build_app()
    runner = CliRunner()
    r = runner.invoke(cli, ["clean", "--workspace", str(ws), "--checks", "quality,imbalance", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["blurry"] >= 1
    r = runner.invoke(cli, ["clean", "--workspace", str(ws), "--apply", "--exclude-quality", "--json"])
    assert r.exit_code == 0, r.output
    action = json.loads(r.stdout)["action_id"]
    assert action is not None
    r = runner.invoke(cli, ["clean", "--undo", str(action), "--workspace", str(ws), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["undone_action_id"] == action
    r = runner.invoke(cli, ["clean", "--workspace", str(ws), "--undo"])
    assert r.exit_code == 2 and "nothing to undo" in r.output
    r = runner.invoke(cli, ["clean", "--workspace", str(ws), "--checks", "colour"])
    assert r.exit_code == 2 and "--checks" in r.output
    r = runner.invoke(cli, ["export-clean", str(tmp_path / "out"), "--workspace", str(ws), "--by-split", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (tmp_path / "out" / "test" / "blue").is_dir() and out["images"] == 43  # all readable (after undo)
    r = runner.invoke(cli, ["export-clean", str(tmp_path / "out"), "--workspace", str(ws)])
    assert r.exit_code == 2 and "not an empty folder" in r.output
