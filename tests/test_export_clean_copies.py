"""`export-clean` writes independent copies by default: editing the export never edits the user's originals.
Hard links only with an explicit --link, whose help says what it means."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.store import Workspace
from support.deploy import make_workspace


def originals(ws_root: Path) -> dict[str, bytes]:
    ws = Workspace.open(ws_root)
    try:
        return {r.path: Path(r.path).read_bytes() for r in ws.catalog.images(labeled=True)}
    finally:
        ws.close()


def test_export_clean_copies_by_default_and_links_only_when_asked(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=3)
    before = originals(ws)
    runner, app = CliRunner(), build_app()

    r = runner.invoke(app, ["export-clean", str(tmp_path / "copy"), "--workspace", str(ws), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["copies"] == out["images"] == len(before) == 9 and out["hard_links"] == 0
    exported = sorted((tmp_path / "copy").rglob("*.png"))
    assert len(exported) == 9 and all(p.stat().st_nlink == 1 for p in exported)
    for p in exported:  # the user edits the export ...
        p.write_bytes(b"edited")
    assert originals(ws) == before  # ... and the originals are untouched

    r = runner.invoke(app, ["export-clean", str(tmp_path / "linked"), "--workspace", str(ws), "--link", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["hard_links"] == 9 and out["copies"] == 0  # same file system here
    linked = sorted((tmp_path / "linked").rglob("*.png"))
    inodes = {Path(p).stat().st_ino for p in before}
    assert {p.stat().st_ino for p in linked} == inodes

    both = runner.invoke(app, ["export-clean", str(tmp_path / "x"), "--workspace", str(ws), "--link", "--copy"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    shown = runner.invoke(app, ["export-clean", "--help"], env={"COLUMNS": "200"})
    assert "--link" in shown.stdout and "changes the original too" in shown.stdout
