"""Auto-labelling by clusters, the active-learning selection, and label import/export round trips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.errors import ConfigError
from picsift.label.autolabel import autolabel, load_clusters
from picsift.label.labels_io import FORMATS, export_labels, import_labels
from picsift.label.queue import next_batch, select_batch, uncertainty, uncertainty_share
from support.label import make_workspace, truth


def test_uncertainty_measures_rank_the_unsure_first() -> None:
    p = np.array([[0.98, 0.01, 0.01], [0.5, 0.45, 0.05], [0.34, 0.33, 0.33]])
    for method in ("margin", "entropy", "least-confident"):
        u = uncertainty(p, method)
        assert u[0] < u[1] and u[0] < u[2] and (u >= 0).all() and (u <= 1 + 1e-9).all()
    assert uncertainty(p, "margin")[2] > uncertainty(p, "margin")[1]
    with pytest.raises(ConfigError):
        uncertainty(p, "nope")


def test_select_batch_spreads_over_clusters_where_uncertainty_alone_does_not() -> None:
    rng = np.random.default_rng(0)
    # Two tight blobs; the first holds all the most uncertain items.
    emb = np.concatenate([rng.normal(0, 0.05, (50, 2)) + [5, 0], rng.normal(0, 0.05, (50, 2)) + [-5, 0]])
    scores = np.concatenate([0.9 + rng.random(50) * 0.1, 0.7 + rng.random(50) * 0.1])
    plain = select_batch(scores, None, 4)
    diverse = select_batch(scores, emb, 4, prefilter=25)
    assert (plain < 50).all()
    assert (diverse < 50).any() and (diverse >= 50).any()
    assert len(set(diverse.tolist())) == 4
    assert list(scores[diverse]) == sorted(scores[diverse], reverse=True)


def test_cold_start_share_covers_the_pool_and_grows_with_labels() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[6, 0], [-6, 0], [0, 6], [0, -6]])
    emb = np.concatenate([rng.normal(0, 0.1, (40, 2)) + c for c in centres])
    scores = np.concatenate([0.9 + rng.random(40) * 0.1, 0.5 + rng.random(120) * 0.3])
    blob = np.arange(160) // 40
    confident_only = select_batch(scores, emb, 4, uncertainty_share=1.0)
    assert set(blob[confident_only]) == {0}  # the model's doubts all sit in one region
    covering = select_batch(scores, emb, 4, uncertainty_share=0.0)
    assert sorted(blob[covering]) == [0, 1, 2, 3]
    for i in covering:  # within each region, the image the model is least sure about
        assert scores[i] == scores[blob == blob[i]].max()
    mixed = select_batch(scores, emb, 8, uncertainty_share=0.5)
    assert len(set(mixed.tolist())) == 8 and set(blob[mixed]) == {0, 1, 2, 3}
    with pytest.raises(ConfigError):
        select_batch(scores, emb, 4, uncertainty_share=1.5)
    shares = [uncertainty_share(n, 10) for n in (100, 200, 400, 1000, 5000)]
    assert shares[0] == shares[1] == 0.0 and shares[-1] == 1.0 and shares == sorted(shares)


def test_cluster_autolabel_groups_unlabelled_images_by_digit(ws) -> None:
    truth_of = truth(ws)
    result = autolabel(ws, "cluster", n_clusters=3, extractor="pixels")
    assert result.clusters == 3 and result.considered == 15
    clusters = load_clusters(ws)["clusters"]
    ids = [i for c in clusters for i in c["image_ids"]]
    assert sorted(ids) == sorted(r.id for r in ws.catalog.images(labeled=False))
    # Clusters of handwritten digits should be mostly pure: majority class covers >= 80% overall.
    majority = sum(max([truth_of[i] for i in c["image_ids"]].count(k) for k in "012") for c in clusters)
    assert majority / len(ids) >= 0.8
    assert len(ws.catalog.images(labeled=True)) == 9  # grouping only, never labels


def test_model_autolabel_without_a_run_says_what_to_do(ws) -> None:
    from picsift.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError, match="picsift train"):
        autolabel(ws, "model")
    with pytest.raises(ConfigError):
        autolabel(ws, "magic")


def test_queue_before_any_run_is_a_diverse_sample(ws) -> None:
    batch = next_batch(ws, 6, extractor="pixels")
    assert batch.run is None and len(batch.items) == 6
    unlabeled = {r.id for r in ws.catalog.images(labeled=False)}
    assert {i.image_id for i in batch.items} <= unlabeled
    classes = {truth(ws)[i.image_id] for i in batch.items}
    assert len(classes) >= 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_import_round_trip(tmp_path: Path, fmt: str) -> None:
    src = make_workspace(tmp_path / "a", per_class=4, labelled_per_class=2)
    out = tmp_path / f"labels.{fmt}"
    assert export_labels(src, out, fmt) == 6
    dst = make_workspace(tmp_path / "b", per_class=4, labelled_per_class=0)
    report = import_labels(dst, out)
    # The second workspace has its own copies of the same PNG bytes: matched by hash or file name.
    assert report.applied == 6 and not report.unmatched and not report.conflicts
    by_sha = {r.sha256: r.label for r in src.catalog.images()}
    assert {r.sha256: r.label for r in dst.catalog.images()} == by_sha
    assert dst.catalog.label_history(dst.catalog.images(labeled=True)[0].id)[-1]["origin"] == "import"
    src.close()
    dst.close()


def test_import_never_overwrites_silently(ws, tmp_path: Path) -> None:
    first = ws.catalog.images(labeled=True)[0]
    f = tmp_path / "labels.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        w.writerow([first.path, "2" if first.label != "2" else "1"])
        w.writerow(["/nowhere/x.png", "0"])
    report = import_labels(ws, f)
    assert report.applied == 0 and len(report.conflicts) == 1 and report.unmatched == ["/nowhere/x.png"]
    assert ws.catalog.image(first.id).label == first.label
    assert import_labels(ws, f, as_proposals=True).proposed == 1
    assert ws.catalog.image(first.id).label == first.label
    assert import_labels(ws, f, overwrite=True).applied == 1
    assert ws.catalog.image(first.id).label != first.label


def test_cli_export_and_autolabel_json(ws, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "coco.json"
    r = runner.invoke(build_app(), ["export-labels", str(out), "--format", "coco", "-w", str(ws.root), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["labeled"] == 9
    coco = json.loads(out.read_text())
    assert len(coco["annotations"]) == 9 and {c["name"] for c in coco["categories"]} == {"0", "1", "2"}
    r = runner.invoke(build_app(), ["autolabel", "-w", str(ws.root), "--method", "model"])
    assert r.exit_code == 2 and "picsift train" in r.output
    r = runner.invoke(build_app(), ["export-labels", str(out), "--format", "xml", "-w", str(ws.root)])
    assert r.exit_code == 2
