"""The HTML reports in a real browser (Debian's chromium via Playwright) at 1280x800: what lays out and what a click
does. Set PICSIFT_SCREENSHOTS_DIR to also keep a screenshot of each page. Skips without chromium or playwright."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.cluster.report import render as render_clusters
from picsift.compare import compare_to_best, render_html
from picsift.curate.findings import Finding
from picsift.curate.report import file_thumbnail_uri, render_report
from picsift.evaluate.metrics import compute_metrics
from picsift.evaluate.report import write_report
from support.browser import shot
from support.images import texture
from support.report import COMPARE_N as N
from support.report import cluster_summary as _summary
from support.report import leaderboard_row as _row

pytestmark = pytest.mark.browser
WIDTH = 1280


@pytest.fixture(autouse=True)
def _browser_available(chromium_path: Path) -> None:  # noqa: F811
    """Skip (or fail under PICSIFT_REQUIRE_ALL=1) before building anything when chromium is missing."""


def test_leaderboard_table_stays_one_line_per_candidate_at_1280(page, tmp_path: Path) -> None:  # noqa: F811
    names = ["fastcnn", "resnet18", "svm:cnn:fastcnn", "logistic:hog", "random-forest:hog", "knn:hog"]
    rows = [_row(n, set(range(120 - 8 * i)), budget_min=0.75 if ":" not in n else None, epochs=40) for i, n in
            enumerate(names)]  # fmt: skip
    rows.append({"candidate": "timm/convnext_tiny", "model": "timm/convnext_tiny", "features": None,
                 "error": "no pretrained weights cached for timm/convnext_tiny: run picsift models --download"})  # fmt: skip
    meta = {"n_eval": N, "split": "test", "seed": 0, "time_budget_min": 3.0, "created_at": "2026-12-01T10:10:10",
            "majority_baseline": {"class": "bees", "accuracy": 0.54}, **compare_to_best(rows[:-1])}  # fmt: skip
    path = tmp_path / "leaderboard.html"
    path.write_text(render_html(rows, meta))
    page.goto(path.as_uri())
    table = page.evaluate(
        "() => { const t = document.getElementById('leaderboard');"
        " const rows = Array.from(t.rows).slice(1, -1).map(r => r.getBoundingClientRect().height);"
        " return {width: t.getBoundingClientRect().right, rows: rows,"
        " page: document.documentElement.scrollWidth}; }"
    )
    assert table["width"] <= WIDTH and table["page"] <= WIDTH  # no sideways scrolling
    assert max(table["rows"]) - min(table["rows"]) < 2  # every candidate's row is one line high
    shot(page, "leaderboard-1280.png")


def test_clean_report_thumbnail_click_shows_the_original_file(page, tmp_path: Path) -> None:  # noqa: F811
    big = np.asarray(Image.fromarray(texture(4)).resize((640, 480)))
    files = []
    for i in range(3):
        f = tmp_path / f"photo{i}.png"
        Image.fromarray(np.roll(big, 40 * i, axis=1)).save(f)
        files.append(str(f))
    findings = [Finding("near_duplicate", (1, 2), 0.98, "2 near-identical images"),
                Finding("blurry", (3,), 5.0, "blurry")]  # fmt: skip
    path = tmp_path / "clean-report.html"
    path.write_text(
        render_report(
            findings,
            thumbs={i + 1: file_thumbnail_uri(f, big) for i, f in enumerate(files)},
            labels={1: "ants", 2: "bees", 3: "ants"},
            paths={i + 1: f for i, f in enumerate(files)},
            meta={"n_images": 3, "checks": ["duplicates", "quality"]},
        )
    )
    page.goto(path.as_uri())
    box = page.locator("figure.shot img").first.bounding_box()
    assert box is not None and round(box["width"]) >= 160
    page.locator("figure.shot img").first.click()
    page.wait_for_function("() => document.querySelector('#zoom img').naturalWidth > 0")
    zoomed = page.evaluate("() => { const i = document.querySelector('#zoom img'); return [i.naturalWidth,"
                           " getComputedStyle(document.getElementById('zoom')).display]; }")  # fmt: skip
    assert zoomed == [640, "block"]  # the original file, not the 160 px thumbnail
    page.keyboard.press("Escape")
    assert page.evaluate("() => getComputedStyle(document.getElementById('zoom')).display") == "none"


def test_cluster_map_thumbnails_do_not_overlap(page, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "clusters.html"
    path.write_text(render_clusters(*_summary(nmi=0.03)))
    page.goto(path.as_uri())
    overlaps = page.evaluate(
        "() => { const b = Array.from(document.querySelectorAll('#map .pt')).map(e => e.getBoundingClientRect());"
        " let n = 0; for (let i = 0; i < b.length; i++) for (let j = i + 1; j < b.length; j++) {"
        " const w = Math.min(b[i].right, b[j].right) - Math.max(b[i].left, b[j].left);"
        " const h = Math.min(b[i].bottom, b[j].bottom) - Math.max(b[i].top, b[j].top);"
        " if (w > 0.5 && h > 0.5) n++; } return [n, b.length]; }"
    )
    assert overlaps == [0, 300]
    shot(page, "clusters-1280.png")


def test_evaluation_report_with_30_classes_does_not_widen_the_page(page, tmp_path: Path) -> None:  # noqa: F811
    classes = [f"species_{i:02d}" for i in range(30)]
    rng = np.random.default_rng(2)
    y = rng.integers(0, 30, 400)
    metrics = compute_metrics(y, rng.dirichlet(np.ones(30), size=400) + 2 * np.eye(30)[y], classes)
    path = write_report(tmp_path / "report.html", metrics, info={"split": "test"})
    page.goto(path.as_uri())
    width = page.evaluate("() => document.documentElement.scrollWidth")
    img = page.evaluate(
        "() => { const i = document.querySelector('img[alt=\"confusion matrix\"]');"
        " return [i.getBoundingClientRect().width, i.naturalWidth]; }"
    )
    assert width <= WIDTH and img[0] == img[1]  # drawn full size inside its own scroll box, not shrunk
