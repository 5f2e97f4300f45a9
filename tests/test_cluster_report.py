"""clusters.html: a plain warning when the clusters ignore the labels, frames coloured by label, thumbnails that
never overlap and zoom sharply, and every member of every cluster one click from the label app."""

from __future__ import annotations

import re

import numpy as np

from picsift.cluster.report import MAX_CELL, THUMB_SOURCE, grid_layout, render
from picsift.label.links import label_app_link
from support.report import cluster_summary, data_uri_size, parse_html


def test_clusters_that_ignore_the_labels_get_a_plain_warning_naming_pretrained_extractors() -> None:
    doc = parse_html(render(*cluster_summary(nmi=0.02)))
    warning = doc.by_id("nmi-warning").text
    assert warning.startswith("These clusters do not follow your labels (NMI 0.020")
    assert "picsift features --list" in warning and "picsift cluster --features NAME" in warning
    assert "nmi-warning" not in render(*cluster_summary(nmi=0.6))


def test_thumbnails_sit_in_distinct_cells_and_zoom_without_upscaling() -> None:
    summary, points, thumbs = cluster_summary(nmi=0.5)
    doc = parse_html(render(summary, points, thumbs))
    spots = [a for a in doc.find_all("a", "pt")]
    assert len(spots) == len(points)
    lefts_tops = {
        tuple(int(v) for v in re.findall(r"(?:left|top):(\d+)px", a.attrs["style"])) for a in spots
    }  # fmt: skip
    assert len(lefts_tops) == len(points)  # no two thumbnails on the same spot
    cell = int(re.search(r"--cell:(\d+)px", doc.by_id("map").attrs["style"]).group(1))  # type: ignore[union-attr]
    coords = np.array(sorted(lefts_tops))
    gaps = np.abs(coords[:, None, :] - coords[None, :, :]).max(axis=2) + np.eye(len(coords), dtype=int) * 10**6
    assert gaps.min() >= cell  # Chebyshev distance of at least one cell: no overlap at all
    # Zoomed, a thumbnail shows at most one of its pixels per screen pixel: sharp, not blown up.
    assert data_uri_size(spots[0].find("img").attrs["src"]) == (THUMB_SOURCE, THUMB_SOURCE)
    zoom = float(re.search(r"\.pt:hover\{transform:scale\(([\d.]+)\)", doc.find("style").text).group(1))  # type: ignore[union-attr]
    assert THUMB_SOURCE - 1 <= cell * zoom <= THUMB_SOURCE + 1 and zoom >= 2 and cell <= MAX_CELL
    # Nearby points stay nearby: the grid keeps the map's left-right order on average.
    cells, _ = grid_layout(np.array([[p["x"], p["y"]] for p in points]))
    xs = np.array([p["x"] for p in points])
    assert np.corrcoef(xs, cells[:, 0])[0, 1] > 0.8


def test_frames_can_be_coloured_by_label_and_every_member_is_reachable() -> None:
    summary, points, thumbs = cluster_summary(nmi=0.5)
    doc = parse_html(render(summary, points, thumbs))
    assert "by-label" in doc.by_id("map").classes()  # labelled images: coloured by label first
    assert {r.attrs["value"] for r in doc.find_all("input") if r.attrs.get("name") == "colour"} == {"cluster", "label"}
    colours = {
        a.attrs["href"]: re.search(r"--lc:(#[0-9a-f]{6})", a.attrs["style"]).group(1) for a in doc.find_all("a", "pt")
    }  # type: ignore[union-attr]
    ants = {colours[label_app_link(p["id"])] for p in points if p["label"] == "ants"}
    bees = {colours[label_app_link(p["id"])] for p in points if p["label"] == "bees"}
    assert len(ants) == len(bees) == 1 and ants != bees
    keys = [k.text for k in doc.by_id("label-keys").find_all("span")]
    assert keys == ["ants", "bees"]
    for c in summary["clusters"]:
        gallery = next(g for g in doc.find_all("div", "gal") if g.attrs["data-c"] == str(c["cluster"]))
        listed = [a.attrs["href"] for a in gallery.find("details").find_all("a")]
        assert listed == [label_app_link(i) for i in c["image_ids"]]  # all 100, not just the first 24
