"""The HTML report: self-contained (inline images, no external links), every section present, extensible."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from picsift.evaluate.metrics import compute_metrics
from picsift.evaluate.report import Mistake, ReportSection, write_report
from support.report import data_uri_size, parse_html

CLASSES = ["cat", "dog", "<fox>"]  # a name that must be escaped


def sample_metrics() -> dict:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3)) + 2.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return compute_metrics(y, probs, CLASSES)


def test_report_is_self_contained_with_all_sections(tmp_path: Path) -> None:
    metrics = sample_metrics()
    history = [
        {"epoch": 1, "train_loss": 1.1, "val_loss": 1.0, "train_acc": 0.4, "val_acc": 0.5},
        {"epoch": 2, "train_loss": 0.7, "val_loss": 0.8, "train_acc": 0.7, "val_acc": 0.66},
    ]
    thumb = np.zeros((16, 16, 3), dtype=np.uint8)
    thumb[4:12, 4:12] = 255
    mistakes = [Mistake(thumb, "cat", "<fox>", 0.93, "/data/cat/x<1>.png")]
    path = write_report(
        tmp_path / "report.html",
        metrics,
        title="Evaluation",
        info={"split": "test"},
        history=history,
        mistakes=mistakes,
        sections=[ReportSection("Drift check", "<p id='extra'>no drift</p>")],
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for title in (
        "Confusion matrix",
        "Per-class precision, recall and F1",
        "Training curves",
        "Reliability diagram",
        "Most confident mistakes",
        "Drift check",
    ):
        assert f"<h2>{title}</h2>" in text
    assert "<p id='extra'>no drift</p>" in text and 'href="#drift-check"' in text
    # Figures (confusion, per-class, curves, reliability) as PNG, the thumbnail as JPEG, all inline.
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    jpegs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', text)
    assert len(pngs) == 4 and len(jpegs) == 1
    for data in pngs + jpegs:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    assert Image.open(io.BytesIO(base64.b64decode(jpegs[0]))).size == (128, 128)
    # Nothing is fetched from elsewhere: no src/href to http(s), no external stylesheet or script.
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)
    assert "<link" not in text and "<script" not in text
    # Class names and paths are escaped, never injected as markup.
    assert "<fox>" not in text and "&lt;fox&gt;" in text
    assert "x&lt;1&gt;.png" in text
    assert f"{100 * metrics['accuracy']:.2f}%" in text
    if metrics["top_confusions"]:
        assert "Most frequent confusions" in text


def test_report_without_history_or_mistakes(tmp_path: Path) -> None:
    y = np.array([0, 1, 2])
    metrics = compute_metrics(y, np.eye(3)[y], CLASSES)
    text = write_report(tmp_path / "r.html", metrics).read_text()
    assert "no per-epoch history" in text
    assert "No mistakes on this split." in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3


def test_report_with_many_classes_stays_readable(tmp_path: Path) -> None:
    k = 64
    classes = [f"class_{i}" for i in range(k)]
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, 300)
    probs = rng.dirichlet(np.ones(k), size=300)
    text = write_report(tmp_path / "r.html", compute_metrics(y, probs, classes)).read_text()
    assert "Showing the 60 classes with the lowest F1 of 64." in text
    assert "class_63" in text  # still in the per-class table


# ---- what a reader needs to trust the numbers -----------------------------------------------------------------


def _header_page(tmp_path: Path) -> tuple[dict, str]:
    metrics = sample_metrics()
    thumb = np.zeros((16, 16, 3), dtype=np.uint8)
    shown = [Mistake(thumb, "cat", "dog", 0.9, "/d/a.png"), Mistake(thumb, "dog", "cat", 0.8, "/d/b.png")]
    text = write_report(
        tmp_path / "report.html",
        metrics,
        info={"model": "fastcnn", "split": "val", "split_reason": "the run has no test split, so validation is used"},
        mistakes=shown,
        setup={"model": "fastcnn", "time_budget_min": 2.0, "epochs": 37, "image_size": 64, "n_train": 244},
        links={"predictions.csv": "predictions.csv", "metrics.json": "metrics.json"},
    ).read_text()
    return metrics, text


def test_header_says_what_was_scored_how_it_was_trained_and_how_sure_the_accuracy_is(tmp_path: Path) -> None:
    from scipy.stats import binomtest

    metrics, text = _header_page(tmp_path)
    scope = parse_html(text).by_id("scope")
    lines = [p.text for p in scope.find_all("p")]
    assert lines[0] == "Scored on the val split (60 images): the run has no test split, so validation is used."
    assert lines[1] == ("Training: model fastcnn, time budget 2 min, 37 epochs, 64 px images, 244 training images.")
    n, right = metrics["n"], round(metrics["accuracy"] * metrics["n"])
    ci = binomtest(right, n).proportion_ci(method="wilson")
    assert metrics["accuracy_ci95"] == pytest.approx([ci.low, ci.high])
    assert f"95% interval {100 * ci.low:.1f}–{100 * ci.high:.1f}%" in lines[2]
    counts = np.asarray(metrics["confusion_matrix"]).sum(axis=1)
    assert f"majority-class baseline of {100 * counts.max() / n:.1f}%" in lines[2]
    assert f"always answering {CLASSES[int(counts.argmax())]}" in lines[2]
    assert lines[3] == f"{n - right} mistakes, 2 shown (the most confident)."
    assert [a.attrs["href"] for a in scope.find_all("a")] == ["predictions.csv", "metrics.json"]


def test_curves_drop_markers_on_long_runs_and_draw_pruned_epochs() -> None:
    from picsift.evaluate.report import curves_note, training_curves_figure

    long = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5, "val_acc": 0.6,
         "images": 120 if e < 250 else 240}
        for e in range(1, 301)
    ]  # fmt: skip
    fig = training_curves_figure(long)
    assert fig is not None and len(fig.axes) == 3  # loss, accuracy, images per epoch
    assert {line.get_label() for line in fig.axes[0].lines} == {"train loss", "val loss"}
    assert all(line.get_marker() in ("None", "", None) for ax in fig.axes for line in ax.lines)
    assert "Data pruning" in curves_note(long) and "between 120 and 240 images per epoch" in curves_note(long)
    short = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "images": 100} for e in range(1, 11)]
    fig = training_curves_figure(short)
    assert fig is not None and len(fig.axes) == 2  # no pruning: no third panel
    assert all(line.get_marker() == "o" for line in fig.axes[0].lines)


def test_reliability_diagram_starts_at_one_over_k_with_counts_and_few_bins_for_small_data() -> None:
    from picsift.evaluate.report import reliability_figure

    metrics = sample_metrics()  # 60 images, 3 classes
    bins = metrics["reliability_display"]
    assert len(bins) == 3 and bins[0]["lower"] == pytest.approx(1 / 3) and bins[-1]["upper"] == 1.0
    assert sum(b["count"] for b in bins) == 60
    fig = reliability_figure(bins)
    acc_ax, hist_ax = fig.axes
    assert acc_ax.get_xlim() == pytest.approx((1 / 3, 1.0))
    assert [t.get_text() for t in hist_ax.texts] == [str(b["count"]) for b in bins]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    big = compute_metrics(y, rng.dirichlet(np.ones(2), size=2000), ["a", "b"])
    assert len(big["reliability_display"]) == 15 and big["reliability_display"][0]["lower"] == 0.5


def test_confusion_matrix_at_30_classes_is_one_full_size_matrix_with_legible_names(tmp_path: Path) -> None:
    from picsift.evaluate.report import confusion_figure

    classes = [f"species_{i:02d}" for i in range(30)]
    rng = np.random.default_rng(2)
    y = rng.integers(0, 30, 400)
    metrics = compute_metrics(y, rng.dirichlet(np.ones(30), size=400) + 2 * np.eye(30)[y], classes)
    fig = confusion_figure(np.asarray(metrics["confusion_matrix"]), classes)
    matrices = [ax for ax in fig.axes if ax.images and ax.get_xlabel() == "predicted class"]
    assert len(matrices) == 1
    ax = matrices[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert min(t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()) >= 8
    dpi = 110
    cell_px = ax.get_window_extent().height / 30 * dpi / fig.dpi
    assert cell_px >= 20  # a class name's 8 pt line (12 px) fits its row
    page = parse_html(write_report(tmp_path / "r.html", metrics).read_text())
    img = next(i for i in page.find_all("img") if i.attrs.get("alt") == "confusion matrix")
    assert "full" in img.classes() and img.parent is not None and "scroll" in img.parent.classes()
    assert data_uri_size(img.attrs["src"])[0] <= 30 * 0.3 * dpi + 4 * dpi  # full size, not shrunk by the page


def test_fast_recipe_records_validation_loss(tmp_path: Path) -> None:
    import torch

    from picsift.config import TrainConfig
    from picsift.models.registry import get_spec
    from picsift.train.fast import fit_fast
    from picsift.train.fast.evaluate import logits_for
    from support.train import digits_data

    data = digits_data(tmp_path)
    rows: list[dict] = []
    cfg = TrainConfig(seed=0, device="cpu", epochs=2)
    trained = fit_fast(get_spec("fastcnn"), data, cfg, torch.device("cpu"), rows.append, tmp_path)
    assert [type(r["val_loss"]) for r in rows] == [float, float]
    # The last epoch scores every validation image with the weights returned: its loss is their cross-entropy.
    logits = logits_for(trained.model, data.x_val, trained.data_config, torch.device("cpu"), amp=False)
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(data.y_val)).item()
    assert rows[-1]["val_loss"] == pytest.approx(expected, rel=1e-3)
