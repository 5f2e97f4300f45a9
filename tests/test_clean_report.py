"""clean-report.html as a user reads it: links into the label app, 160 px thumbnails with file names, the keep mark
explained, labels under duplicate copies, a suggested-label column, zero counts; and the copy it keeps is the best."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from picsift.cli.label_cmd import label as label_command
from picsift.config import CleanConfig, ImportConfig
from picsift.curate import run as clean_run
from picsift.curate.duplicates import keep_order
from picsift.curate.findings import Finding
from picsift.curate.quality import copy_quality, quality_metrics
from picsift.curate.report import THUMB_SIDE, render_report, thumbnail_uri
from picsift.ingest import run as import_run
from picsift.label.links import label_app_link
from picsift.store import ImageRow, Workspace
from support.images import DATASETS, require, texture
from support.report import data_uri_size, parse_html


def test_report_links_use_the_label_commands_default_port() -> None:
    port = inspect.signature(label_command).parameters["port"].default
    assert label_app_link(12) == f"http://127.0.0.1:{port}/#image=12"


def _report() -> str:
    photo = np.asarray(Image.fromarray(texture(1)).resize((300, 200)))
    thumbs = {i: thumbnail_uri(photo) for i in (1, 2, 3, 4)}
    findings = [
        Finding("near_duplicate", (1, 2), 0.97, "2 near-identical images", {}),
        Finding("conflicting_labels", (1, 2), 0.97, "copies of the same picture are labelled 'ants' vs 'bees'", {}),
        Finding("label_issue", (3,), 0.8, "labelled 'ants' but looks like 'bees'", {"suggested_label": "bees",
                                                                                     "confidence": 0.71}),
        Finding("blurry", (4,), 5.2, "blurry", {}),
    ]  # fmt: skip
    return render_report(
        findings,
        thumbs=thumbs,
        labels={1: "ants", 2: "bees", 3: "ants", 4: "bees"},
        paths={i: f"/data/photos/pic{i}.jpg" for i in (1, 2, 3, 4)},
        meta={"n_images": 4, "checks": ["duplicates", "quality", "labels"], "created_at": "now"},
    )


def test_every_image_links_to_the_label_app_with_its_file_name_and_a_160px_thumbnail() -> None:
    doc = parse_html(_report())
    shots = doc.find_all("figure", "shot")
    assert len(shots) == 6  # 2 + 2 in the duplicate groups, 1 label issue, 1 blurry
    for fig in shots:
        link = fig.find("a", "open")
        iid = int(link.text.lstrip("#"))
        assert link.attrs["href"] == label_app_link(iid)
        assert fig.find("span", "file").text == f"pic{iid}.jpg"
        img = fig.find("img")
        assert max(data_uri_size(img.attrs["src"])) == THUMB_SIDE == 160
        assert img.attrs["data-full"] == f"file:///data/photos/pic{iid}.jpg"  # click: the original file
    assert doc.by_id("zoom").find("img")  # the enlarge overlay the click opens


def test_duplicate_groups_mark_the_kept_copy_with_a_legend_and_show_each_label() -> None:
    doc = parse_html(_report())
    legend = doc.find("p", "legend")
    assert "keep" in legend.text and "--exclude-near-duplicates" in legend.text and "most pixels" in legend.text
    for kind in ("near_duplicate", "conflicting_labels"):
        table = next(t for t in doc.find_all("table", "kind") if t.attrs["data-kind"] == kind)
        first, second = table.find_all("figure", "shot")
        assert "keep" in first.classes() and first.find("span", "keepmark").text == "keep"
        assert "drop" in second.classes() and not second.find_all("span", "keepmark")
        assert [f.find("span", "lab").text for f in (first, second)] == ["ants", "bees"]


def test_label_issues_have_a_suggested_label_column_and_checks_that_found_nothing_show_zero() -> None:
    doc = parse_html(_report())
    table = next(t for t in doc.find_all("table", "kind") if t.attrs["data-kind"] == "label_issue")
    assert [th.text for th in table.find_all("th")][-2:] == ["suggested label", "confidence"]
    assert table.find("td", "suggested").text == "bees"
    rows = {tr.find_all("td")[1].text: int(tr.find_all("td")[2].text) for tr in doc.by_id("summary").find_all("tr")[1:]}
    assert rows["near_duplicate"] == 1 and rows["blurry"] == 1 and rows["label_issue"] == 1
    assert rows["exact_duplicate"] == 0 and rows["too_dark"] == 0 and rows["unreadable"] == 0
    assert "outlier" not in rows  # a check that did not run is not listed


def _row(i: int, pixels: np.ndarray, split: str = "train", size: int = 1000) -> ImageRow:
    h, w = pixels.shape[:2]
    return ImageRow(
        id=i, sha256=str(i), path=f"/x/{i}.png", source="/x", byte_size=size, width=w, height=h, format="PNG",
        mode="RGB", readable=True, error=None, label="a", label_version=1, split=split, duplicate_of=None,
        excluded=False,
    )  # fmt: skip


def test_keep_order_prefers_the_original_over_darkened_faded_or_blurred_copies() -> None:
    original = np.asarray(Image.fromarray(texture(3)).resize((256, 256), Image.Resampling.BICUBIC))
    dark = (original * 0.4).astype(np.uint8)
    faded = (original * 0.5 + 64).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(original).filter(ImageFilter.GaussianBlur(2)))
    x = np.stack([original, dark, faded, blurred])
    quality = dict(enumerate(copy_quality(quality_metrics(x)).tolist()))
    # The copies are bigger files and sit in the held-out split: neither outweighs the picture itself.
    rows = [_row(0, original, "train", 1000)] + [_row(i, x[i], "test", 5000) for i in (1, 2, 3)]
    assert keep_order(rows, quality)[0].id == 0
    # Equal copies (identical bytes): the held-out split still keeps its own.
    same = [_row(5, original, "train"), _row(6, original, "test")]
    assert [r.id for r in keep_order(same, {5: 1.0, 6: 1.0})] == [6, 5]


@pytest.mark.datasets
def test_hymenoptera_darkened_copy_is_dropped_and_radius3_blurs_are_flagged(tmp_path: Path) -> None:
    photos = sorted((DATASETS / "hymenoptera" / "train").glob("*/*.jpg"))
    require(len(photos) >= 30, f"hymenoptera photos not found under {DATASETS}")
    src = tmp_path / "photos"
    chosen = [src / p.parent.name / p.name for p in photos[:15] + photos[-15:]]  # ants and bees
    for p, q in zip(photos[:15] + photos[-15:], chosen, strict=True):
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, q)
    with Image.open(chosen[1]) as img:  # darkened and saved losslessly: a bigger file than the original
        Image.fromarray((np.asarray(img.convert("RGB")) * 0.4).astype(np.uint8)).save(chosen[1].with_name("dark.png"))
    for k in (0, 10, 20):  # at 64 px none of these scored below -4 robust SDs; at 256 px they score -5 to -9
        with Image.open(chosen[k]) as img:
            img.convert("RGB").filter(ImageFilter.GaussianBlur(3)).save(chosen[k].with_name(f"blur{k}.jpg"), quality=92)
    ws = tmp_path / "ws"
    import_run(ImportConfig(source=str(src), workspace=ws))
    result = clean_run(CleanConfig(workspace=ws, checks=("duplicates", "quality")))

    ids = {Path(r.path).name: r.id for r in Workspace.open(ws).catalog.images(readable=None)}
    groups = [f.image_ids for f in result.findings if f.kind == "near_duplicate"]
    dark_group = next(g for g in groups if ids["dark.png"] in g)
    assert dark_group[0] == ids[chosen[1].name]  # the original is kept: --exclude-near-duplicates drops the copy
    blurry = {f.image_ids[0] for f in result.findings if f.kind == "blurry"}
    assert blurry == {ids["blur0.jpg"], ids["blur10.jpg"], ids["blur20.jpg"]}  # and no sharp photo
