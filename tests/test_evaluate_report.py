"""The HTML report: self-contained (inline images, no external links), every section present, extensible."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from picsift.evaluate.metrics import compute_metrics
from picsift.evaluate.report import Mistake, ReportSection, write_report

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
