"""The labelling app's listing rules without the web layer: filtering, ordering, predictions, findings, clusters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from picsift.errors import ConfigError
from picsift.label.findings import findings_for, load_findings
from picsift.label.listing import (
    ImageQuery,
    class_counts,
    cluster_groups,
    filter_rows,
    list_images,
    parse_ids,
    pending_proposals,
    prediction_summary,
    sort_by_confidence,
)
from picsift.label.scoring import PredictionCache, latest_run, run_choices


def ids_of(ws, query: ImageQuery) -> list[int]:
    return [r.id for r in filter_rows(ws.catalog, query.validate(), pending_proposals(ws.catalog))]


def test_views_label_split_and_exclusions(ws) -> None:
    labelled = [1, 2, 3, 9, 10, 11, 17, 18, 19]
    assert ids_of(ws, ImageQuery()) == list(range(1, 25))
    assert ids_of(ws, ImageQuery(view="labeled")) == labelled
    assert ids_of(ws, ImageQuery(view="unlabeled")) == [i for i in range(1, 25) if i not in labelled]
    assert ids_of(ws, ImageQuery(label="1")) == [9, 10, 11]
    assert ids_of(ws, ImageQuery(split="train", view="labeled", label="2")) == [17, 18, 19]
    assert ids_of(ws, ImageQuery(split="test")) == []
    ws.catalog.exclude({4: "blurry", 9: "blurry"}, kind="manual")
    assert ids_of(ws, ImageQuery(view="excluded")) == [4, 9]
    assert 4 not in ids_of(ws, ImageQuery(view="unlabeled")) and 9 not in ids_of(ws, ImageQuery(view="labeled"))
    assert 4 in ids_of(ws, ImageQuery(view="all"))


def test_ids_keep_the_asked_order_and_include_excluded(ws) -> None:
    ws.catalog.exclude({5: "odd"}, kind="manual")
    assert ids_of(ws, ImageQuery(view="unlabeled", ids=[7, 5, 1, 99])) == [7, 5]
    assert parse_ids("7, 5,1,") == [7, 5, 1] and parse_ids("") is None and parse_ids(None) is None
    with pytest.raises(ConfigError, match="comma-separated image ids"):
        parse_ids("7,five")


def test_proposed_view_lists_images_with_a_pending_proposal(ws) -> None:
    ws.catalog.propose_labels([(4, "0", 0.9), (12, "1", 0.8)], origin="model")
    assert ids_of(ws, ImageQuery(view="proposed")) == [4, 12]
    assert pending_proposals(ws.catalog)[12]["label"] == "1"


@pytest.mark.parametrize(("field", "value"), [("view", "bogus"), ("sort", "random")])
def test_unknown_view_or_sort_names_the_choices(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown {field} '{value}'"):
        ImageQuery(**{field: value}).validate()


def test_sort_by_confidence_puts_images_without_prediction_last(ws) -> None:
    rows = ws.catalog.images(ids=[1, 2, 3, 4])
    probs = {1: np.array([0.5, 0.5]), 2: np.array([0.9, 0.1]), 3: np.array([0.3, 0.7])}
    assert [r.id for r in sort_by_confidence(rows, probs, "confidence")] == [2, 3, 1, 4]
    assert [r.id for r in sort_by_confidence(rows, probs, "uncertainty")] == [1, 3, 2, 4]


def test_prediction_summary_top_margin_and_top3() -> None:
    out = prediction_summary(np.array([0.1, 0.6, 0.25, 0.05]), ["a", "b", "c", "d"])
    assert out is not None
    assert (out["label"], out["confidence"], out["margin"]) == ("b", pytest.approx(0.6), pytest.approx(0.35))
    assert [t["label"] for t in out["top"]] == ["b", "c", "a"]
    assert prediction_summary(np.array([1.0]), ["only"])["margin"] == 1.0  # type: ignore[index]
    assert prediction_summary(None, ["a"]) is None and prediction_summary(np.array([1.0]), []) is None


def test_class_counts_count_labelled_images_and_declared_classes(ws) -> None:
    ws.catalog.add_class("seven")
    ws.catalog.set_label(4, "0")
    assert class_counts(ws.catalog) == [
        {"name": "0", "count": 4},
        {"name": "1", "count": 3},
        {"name": "2", "count": 3},
        {"name": "seven", "count": 0},
    ]


def test_findings_accept_both_layouts_and_tolerate_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "findings.json"
    assert load_findings(tmp_path) == []
    path.write_text(
        json.dumps({"findings": [{"kind": "blurry", "image_id": 3}, {"kind": "dup", "image_ids": [1, "x", "2"]}, 7]})
    )
    found = load_findings(tmp_path)
    assert [(f["kind"], f["image_ids"]) for f in found] == [("blurry", [3]), ("dup", [1, 2])]
    assert [f["kind"] for f in findings_for(found, 2)] == ["dup"]
    path.write_text("[{not json")
    assert load_findings(tmp_path) == []


def test_clusters_view_reads_the_newest_clustering_of_either_command(ws) -> None:
    """`picsift cluster` writes clusters/clusters.json (labelled images too); `autolabel --method cluster` writes
    clusters.json: the view shows whichever is newer, unlabelled members first, excluded images left out."""
    import os

    (ws.root / "clusters.json").write_text(json.dumps({"clusters": [{"id": 0, "image_ids": [4, 5]}]}))
    os.utime(ws.root / "clusters.json", (1_000_000_000, 1_000_000_000))
    (ws.root / "clusters").mkdir()
    command = {
        "features": "hog",
        "clusters": [{"cluster": 0, "size": 4, "image_ids": [1, 2, 4, 6]}, {"cluster": 1, "size": 1, "image_ids": [7]}],
    }
    (ws.root / "clusters" / "clusters.json").write_text(json.dumps(command))
    ws.catalog.exclude({7: "blurry"}, kind="manual")
    out = cluster_groups(ws)
    assert out["source"] == "picsift cluster" and out["features"] == "hog"
    assert out["clusters"] == [
        {"id": 0, "size": 4, "image_ids": [4, 6, 1, 2], "unlabeled_ids": [4, 6], "labels": {"0": 2}}
    ]
    os.utime(ws.root / "clusters.json")  # now the newer one
    out = cluster_groups(ws)
    assert out["source"] == "picsift autolabel --method cluster" and [c["image_ids"] for c in out["clusters"]] == [
        [4, 5]
    ]


def test_findings_view_kind_filter_score_order_and_badges(ws) -> None:
    findings = [
        {"kind": "blurry", "image_ids": [5], "score": 0.3, "explanation": "soft"},
        {"kind": "label_issue", "image_ids": [2], "score": 0.9, "explanation": "looks like 1",
         "details": {"given_label": "0", "suggested_label": "1"}},
        {"kind": "blurry", "image_ids": [4], "score": 0.7, "explanation": "softer"},
    ]  # fmt: skip
    (ws.root / "findings.json").write_text(json.dumps({"findings": findings}))
    preds = PredictionCache()

    def listed(**kw):
        return list_images(ws, preds, ImageQuery(**kw))

    assert [x["id"] for x in listed(view="findings", sort="finding")["items"]] == [2, 4, 5]
    assert [x["id"] for x in listed(view="findings", sort="finding", finding="blurry")["items"]] == [4, 5]
    assert [x["id"] for x in listed(view="all", finding="label_issue")["items"]] == [2]
    item = listed(ids=[2])["items"][0]
    assert item["findings"] == [{"kind": "label_issue", "score": 0.9, "given_label": "0", "suggested_label": "1"}]
    assert item["disagrees"] is False  # no model: no disagreement claimed
    with pytest.raises(ConfigError, match="findings"):
        ImageQuery(view="issues").validate()


def fake_run(ws, name: str) -> Path:
    run_dir = ws.runs_dir / name
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "model.json").write_text(json.dumps({"classes": ["0", "1", "2"]}))
    (run_dir / "run.json").write_text(json.dumps({"model": name.split("-", 2)[2], "best_val_acc": 0.5}))
    return run_dir


def test_default_run_is_the_latest_the_user_trained_not_a_candidate(ws) -> None:
    assert latest_run(ws) is None and run_choices(ws) == []
    compared = fake_run(ws, "20260101-000000-compare-fastcnn")
    assert latest_run(ws) == compared  # only candidates: the latest of them
    trained = fake_run(ws, "20260102-000000-fastcnn")
    fake_run(ws, "20260103-000000-compare-knn")
    fake_run(ws, "20260104-000000-tune-fastcnn")
    assert latest_run(ws) == trained
    assert latest_run(ws, "20260103-000000-compare-knn").name == "20260103-000000-compare-knn"
    choices = run_choices(ws)
    assert [(c["name"], c["candidate"], c["default"]) for c in choices] == [
        ("20260104-000000-tune-fastcnn", True, False),
        ("20260103-000000-compare-knn", True, False),
        ("20260102-000000-fastcnn", False, True),
        ("20260101-000000-compare-fastcnn", True, False),
    ]
    assert choices[2]["model"] == "fastcnn" and choices[2]["val_acc"] == 0.5


def test_label_app_link_opens_an_image_and_keeps_the_token() -> None:
    from picsift.label.links import label_app_link

    assert label_app_link(12) == "http://127.0.0.1:8765/#image=12"
    assert label_app_link(3, "http://10.0.0.5:9000/?token=abc") == "http://10.0.0.5:9000/?token=abc#image=3"
    assert label_app_link(3, "http://h:1#image=9") == "http://h:1/#image=3"
    with pytest.raises(ValueError, match="positive integer"):
        label_app_link(0)
