"""`picsift clean --apply` acts only on findings that still hold: the catalog may have changed since findings.json
was written (an image relabelled, excluded, fixed), on a tiny digits workspace."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.curate import ApplyOptions, apply
from picsift.curate.findings import Finding, save_findings
from picsift.store import Workspace
from support.label import make_workspace

RELABELLED = "relabelled since `picsift clean` ran"


def label_issue(image_id: int, given: str, suggested: str) -> Finding:
    """A label issue as `picsift clean` writes it."""
    details = {"given_label": given, "suggested_label": suggested, "confidence": 0.9, "p_given": 0.05}
    return Finding("label_issue", (image_id,), 0.95, f"labelled {given!r} but looks like {suggested!r}", details)


def write_findings(ws: Workspace, findings: list[Finding]) -> None:
    save_findings(ws.root / "findings.json", findings, {"catalog_hash": ws.catalog.catalog_hash()})


def test_a_label_issue_relabelled_since_the_checks_is_skipped(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=4, labelled_per_class=4)  # ids 1-4 labelled "0", 5-8 "1"
    assert [ws.catalog.image(i).label for i in (1, 2, 3, 4, 5)] == ["0", "0", "0", "0", "1"]
    write_findings(ws, [label_issue(i, "0", "1") for i in (1, 2, 3, 4)] + [label_issue(5, "1", "2")])
    for image_id in (1, 2, 3):  # the user followed the report's suggestion
        ws.catalog.set_label(image_id, "1")
    ws.catalog.set_label(5, "2")
    ws.close()
    cli, runner = build_app(), CliRunner()
    r = runner.invoke(cli, ["clean", "--workspace", str(ws.root), "--apply", "--exclude-label-issues", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["excluded"] == 1 and out["findings_stale"] is True
    assert out["skipped"] == [{"kind": "label_issue", "reason": RELABELLED, "count": 4, "image_ids": [1, 2, 3, 5]}]
    again = Workspace.open(ws.root)
    assert [i for i in range(1, 9) if again.catalog.image(i).excluded] == [4]
    again.catalog.set_label(4, "1")  # the last one relabelled too; undo the action and apply once more in text
    again.close()
    assert runner.invoke(cli, ["clean", "--workspace", str(ws.root), "--undo"]).exit_code == 0
    r = runner.invoke(cli, ["clean", "--workspace", str(ws.root), "--apply", "--exclude-label-issues"])
    assert r.exit_code == 0, r.output
    assert "nothing to exclude" in r.output
    assert f"5 label-issue findings skipped: {RELABELLED}" in r.output


def test_other_findings_that_no_longer_hold(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=6, labelled_per_class=6)  # "0": 1-6, "1": 7-12, "2": 13-18
    write_findings(
        ws,
        [
            Finding("near_duplicate", (1, 2, 3), 0.99, "3 near-identical images"),  # keeper 1 excluded: keep 2
            Finding("near_duplicate", (4, 5), 0.99, "2 near-identical images"),  # keeper 4 excluded: keep 5
            Finding("exact_duplicate", (7, 8), 1.0, "2 files with identical bytes"),  # unchanged: exclude 8
            Finding("unreadable", (9,), 1.0, "cannot identify"),  # reads now (readable in the catalog)
            Finding("class_outlier", (13,), 4.0, "unlike the other '2' images", {"class": "2"}),
            Finding("class_outlier", (14,), 4.0, "unlike the other '2' images", {"class": "2"}),
            Finding("outlier", (15,), 5.0, "far from all images"),  # already excluded
        ],
    )
    ws.catalog.exclude({1: "blurry", 4: "blurry", 15: "dark"}, kind="manual")
    ws.catalog.set_label(13, "1")
    res = apply(ws.root, ApplyOptions(near_duplicates=True, unreadable=True, outliers=True))
    skipped = {(s["kind"], s["reason"]): s["image_ids"] for s in res["skipped"]}
    assert skipped == {
        (
            "near_duplicate",
            "the copy to keep was excluded or removed since `picsift clean` ran, and one copy must stay",
        ): [
            4,
            5,
        ],
        ("unreadable", "readable again since `picsift clean` ran"): [9],
        ("class_outlier", RELABELLED): [13],
    }
    assert res["rekept"] == 1 and res["already_excluded"] == 1 and res["excluded"] == 3
    excluded = [r.id for r in ws.catalog.images(include_excluded=True) if r.excluded]
    assert excluded == [1, 3, 4, 8, 14, 15]  # 2 and 5 stay: each the one copy left of its group
    ws.close()
