"""`picsift status` counts the classes images have, and names declared classes that no image has (a class named
in the labelling app or by feedback, or one whose images were all relabelled) instead of counting them silently."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.store import Workspace
from support.images import write_digits


def test_status_names_declared_classes_without_images(tmp_path: Path) -> None:
    data = write_digits(tmp_path / "digits", per_class=4, classes=3)
    ws = tmp_path / "ws"
    assert CliRunner().invoke(build_app(), ["import", str(data), "-w", str(ws)]).exit_code == 0
    w = Workspace.open(ws)
    for row in w.catalog.images():
        if row.label == "2":
            w.catalog.set_label(row.id, "1")  # class 2 loses every image
    w.catalog.add_class("wasps")  # named, never used
    w.close()

    result = CliRunner().invoke(build_app(), ["status", "-w", str(ws), "--json"])
    status = json.loads(result.stdout)
    assert status["classes"] == ["0", "1", "2", "wasps"] and status["empty_classes"] == ["2", "wasps"]
    result = CliRunner().invoke(build_app(), ["status", "-w", str(ws)])
    assert result.exit_code == 0
    assert "12 labelled, 0 unlabelled, 2 classes (also declared, with no image: 2, wasps)" in result.stdout


def test_status_and_clean_undo_name_the_action_that_excluded_images(tmp_path: Path) -> None:
    """Images excluded in the labelling app are restored by `clean --undo ID`: status names the ID, and a plain
    `clean --undo` (which undoes `clean --apply` actions) says which ID to give instead of only 'nothing to undo'."""
    data = write_digits(tmp_path / "digits", per_class=4, classes=2)
    ws = tmp_path / "ws"
    assert CliRunner().invoke(build_app(), ["import", str(data), "-w", str(ws)]).exit_code == 0
    w = Workspace.open(ws)
    ids = [r.id for r in w.catalog.images()][:3]
    action = w.catalog.exclude({i: "blurry" for i in ids}, kind="label-app", actor="ann", reason="excluded in app")
    w.close()

    shown = CliRunner().invoke(build_app(), ["status", "-w", str(ws)])
    assert f"excluded from training: blurry 3; `picsift clean --undo {action}` (3) restores them" in shown.stdout
    plain = CliRunner().invoke(build_app(), ["clean", "--undo", "-w", str(ws)])
    assert plain.exit_code == 2 and f"`picsift clean --undo ID` with ID {action} restores them" in plain.stderr
    given = CliRunner().invoke(build_app(), ["clean", "--undo", str(action), "-w", str(ws)])
    assert given.exit_code == 0, given.output
    status = json.loads(CliRunner().invoke(build_app(), ["status", "-w", str(ws), "--json"]).stdout)
    assert status["excluded"] == 0 and status["exclusion_actions"] == {}
