"""Metrics and calibration against small hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from picsift.errors import DatasetError
from picsift.evaluate.calibration import expected_calibration_error, reliability_bins
from picsift.evaluate.metrics import compute_metrics, most_confident_mistakes, top_k_accuracy

CLASSES = ["cat", "dog", "fox"]


def onehot_probs(pred: list[int], k: int = 3, conf: float = 0.8) -> np.ndarray:
    p = np.full((len(pred), k), (1 - conf) / (k - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    m = compute_metrics(y, np.eye(3)[y], CLASSES)
    assert m["accuracy"] == 1.0
    assert m["macro_avg"]["f1"] == 1.0
    assert m["weighted_avg"]["precision"] == 1.0
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert m["per_class"]["dog"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert m["ece"] == pytest.approx(0.0)
    assert m["top_confusions"] == []
    assert m["nll"] == pytest.approx(0.0, abs=1e-9)
    assert m["brier"] == pytest.approx(0.0)
    json.dumps(m)  # JSON-ready as is


def test_known_confusion_matrix_and_per_class_scores() -> None:
    #            true: cat cat cat cat dog dog dog fox fox fox
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
    m = compute_metrics(y, onehot_probs(pred), CLASSES)
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert [(c["true"], c["predicted"], c["count"]) for c in m["top_confusions"]] == [
        ("cat", "dog", 1),
        ("dog", "fox", 1),
        ("fox", "cat", 1),
    ]
    assert m["top_confusions"][0]["fraction_of_true"] == pytest.approx(1 / 4)
    assert m["accuracy"] == pytest.approx(7 / 10)
    cat = m["per_class"]["cat"]
    # cat: 3 right of 4 predicted cat (precision 3/4), 3 of 4 true cats found (recall 3/4)
    assert cat["precision"] == pytest.approx(3 / 4)
    assert cat["recall"] == pytest.approx(3 / 4)
    assert cat["f1"] == pytest.approx(3 / 4)
    assert cat["support"] == 4
    dog = m["per_class"]["dog"]  # predicted dog 3 times, 2 right; 3 true dogs, 2 found
    assert dog["precision"] == pytest.approx(2 / 3)
    assert dog["recall"] == pytest.approx(2 / 3)
    fox = m["per_class"]["fox"]  # predicted fox 3 times, 2 right
    assert fox["precision"] == pytest.approx(2 / 3)
    macro_f1 = (3 / 4 + 2 / 3 + 2 / 3) / 3
    assert m["macro_avg"]["f1"] == pytest.approx(macro_f1)
    weighted_f1 = (4 * 3 / 4 + 3 * 2 / 3 + 3 * 2 / 3) / 10
    assert m["weighted_avg"]["f1"] == pytest.approx(weighted_f1)
    assert m["weighted_avg"]["support"] == 10
    cm = np.array(m["confusion_matrix"])
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    # every row's prediction has probability 0.8: NLL is -log 0.8 on the right ones, -log 0.1 elsewhere
    assert m["nll"] == pytest.approx(-(7 * math.log(0.8) + 3 * math.log(0.1)) / 10)


def test_class_missing_from_split_does_not_drag_macro_average() -> None:
    y = np.array([0, 0, 1, 1])
    m = compute_metrics(y, np.eye(3)[y], CLASSES)
    assert m["per_class"]["fox"]["support"] == 0
    assert m["macro_avg"]["f1"] == 1.0


def test_top_k() -> None:
    probs = np.array(
        [
            [0.5, 0.3, 0.2],  # true 1: second choice
            [0.1, 0.2, 0.7],  # true 0: third choice
            [0.6, 0.3, 0.1],  # true 0: first choice
            [0.2, 0.5, 0.3],  # true 2: second choice
        ]
    )
    y = np.array([1, 0, 0, 2])
    assert top_k_accuracy(y, probs, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(y, probs, 2) == pytest.approx(3 / 4)
    assert top_k_accuracy(y, probs, 3) == 1.0
    m = compute_metrics(y, probs, CLASSES, top_k=(1, 2, 5))
    assert m["top_k_accuracy"] == {"1": pytest.approx(0.25), "2": pytest.approx(0.75)}  # 5 > 3 classes: left out
    assert m["accuracy"] == m["top_k_accuracy"]["1"]


def test_ece_calibrated_vs_overconfident() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros(100, dtype=np.int64)
    # Calibrated: confidence 0.7 on every image and exactly 70 of 100 right.
    pred = np.array([0] * 70 + [1] * 30)
    calibrated = compute_metrics(y, onehot_probs(list(pred), conf=0.7), CLASSES)
    assert calibrated["ece"] == pytest.approx(0.0, abs=1e-9)
    # Over-confident: confidence 0.95 but only half right -> ECE = 0.95 - 0.5.
    pred = rng.permutation(np.array([0] * 50 + [1] * 50))
    over = compute_metrics(y, onehot_probs(list(pred), conf=0.95), CLASSES)
    assert over["ece"] == pytest.approx(0.45)
    assert over["mce"] == pytest.approx(0.45)
    full = [b for b in over["reliability"] if b["count"]]
    assert len(full) == 1 and full[0]["lower"] < 0.95 <= full[0]["upper"]
    assert full[0]["accuracy"] == pytest.approx(0.5)
    assert len(over["reliability"]) == 15


def test_ece_is_count_weighted_mean_of_bin_gaps() -> None:
    conf = np.array([0.35, 0.35, 0.95, 0.95, 0.95, 0.95])
    correct = np.array([True, False, True, True, True, False])
    bins = reliability_bins(conf, correct, n_bins=10)
    # bin (0.3, 0.4]: acc 0.5, conf 0.35 -> gap 0.15 (2 images); bin (0.9, 1]: acc .75, conf .95 -> .2 (4)
    assert expected_calibration_error(bins) == pytest.approx((2 * 0.15 + 4 * 0.2) / 6)
    assert sum(b.count for b in bins) == 6


def test_most_confident_mistakes_order() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.97, 0.03]])
    y = np.array([1, 1, 0, 0])
    assert most_confident_mistakes(y, probs).tolist() == [0, 2]
    assert most_confident_mistakes(y, probs, limit=1).tolist() == [0]


@pytest.mark.parametrize(
    ("y", "probs", "message"),
    [
        (np.array([0, 1]), np.ones((3, 3)) / 3, "shape"),
        (np.array([0, 3]), np.ones((2, 3)) / 3, "class indices"),
        (np.array([0, 1]), np.ones((2, 2)) / 2, "class names"),
        (np.array([], dtype=int), np.ones((0, 3)), "no images"),
        (np.array([0.0, 1.0]), np.ones((2, 3)) / 3, "integer"),
    ],
)
def test_bad_inputs_raise_typed_errors(y: np.ndarray, probs: np.ndarray, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        compute_metrics(y, probs, CLASSES)
