"""Each clean check on small crafted images, as plain functions (no workspace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from picsift.curate.descriptors import hand_features
from picsift.curate.duplicates import DuplicateParams, UnionFind, duplicate_findings, near_duplicate_pairs
from picsift.curate.imbalance import find_imbalance
from picsift.curate.labels import (
    cnn_cross_val_logits,
    combine_probs,
    cross_val_pred_probs,
    fdr_label_issues,
    find_label_issues,
    select_label_issues,
)
from picsift.curate.outliers import find_outliers
from picsift.curate.quality import find_quality_issues
from picsift.store import ImageRow
from support.images import jpeg_crop_copy, texture, write_digits


def row(i: int, sha: str | None = None, split: str = "train", label: str | None = "a", size: int = 64) -> ImageRow:
    return ImageRow(
        id=i, sha256=sha or f"{i:064x}", path=f"/data/{i}.png", source="", byte_size=1000 + i, width=size,
        height=size, format="PNG", mode="RGB", readable=True, error=None, label=label, label_version=1,
        split=split, duplicate_of=None, excluded=False,
    )  # fmt: skip


def test_near_duplicate_pair_is_found_and_distinct_images_are_not() -> None:
    originals = [texture(s) for s in range(30)]
    x = np.stack([*originals, jpeg_crop_copy(originals[3])])
    pairs = near_duplicate_pairs(x, DuplicateParams(neighbours=5))
    assert {(i, j) for i, j, _ in pairs} == {(3, 30)}
    assert pairs[0][2] > 0.955


def test_duplicate_groups_flag_exact_copies_leakage_and_conflicting_labels() -> None:
    rows = [row(0), row(1, sha=f"{0:064x}", split="test", label="b"), row(2), row(3, size=128)]
    findings = duplicate_findings(rows, near_pairs=[(2, 3, 0.97)])
    kinds = sorted(f.kind for f in findings)
    assert kinds == ["conflicting_labels", "exact_duplicate", "near_duplicate", "split_leakage"]
    exact = next(f for f in findings if f.kind == "exact_duplicate")
    assert exact.image_ids == (1, 0)  # the held-out (test) copy is the one kept
    near = next(f for f in findings if f.kind == "near_duplicate")
    assert near.image_ids == (3, 2)  # the larger copy is kept


def test_union_find_merges_chains_into_one_group() -> None:
    uf = UnionFind(6)
    uf.union(0, 1)
    uf.union(1, 2)
    uf.union(4, 5)
    assert sorted(map(sorted, uf.groups())) == [[0, 1, 2], [4, 5]]


def test_quality_flags_blurred_black_dark_bright_gray_and_small() -> None:
    normal = [texture(s) for s in range(40)]
    blurred = np.asarray(Image.fromarray(normal[0]).filter(ImageFilter.GaussianBlur(3)))
    black = np.zeros((64, 64, 3), np.uint8)
    dark = (normal[1] * 0.12).astype(np.uint8)
    bright = (255 - (255 - normal[2].astype(np.int32)) * 0.08).astype(np.uint8)
    gray = np.repeat(normal[3].mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    x = np.stack([*normal, blurred, black, dark, bright, gray])
    ids = list(range(len(x)))
    sizes = [(64, 64)] * 40 + [(64, 64), (64, 64), (64, 64), (64, 64), (8, 64)]
    got = {(f.kind, f.image_ids[0]) for f in find_quality_issues(ids, x, sizes)}
    assert ("blurry", 40) in got
    assert ("low_information", 41) in got and ("too_dark", 41) in got
    assert ("too_dark", 42) in got
    assert ("too_bright", 43) in got
    assert ("grayscale", 44) in got and ("too_small", 44) in got and ("extreme_aspect", 44) in got
    assert not [k for k, i in got if i < 40], "sharp, well-exposed colour images must not be flagged"


def test_outlier_far_from_everything_is_flagged() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.05, (60, 8)) + np.array([1, 0, 0, 0, 0, 0, 0, 0])
    emb[17] = [0, 0, 0, 0, 0, 0, 0, 1]
    found = find_outliers(list(range(60)), emb.astype(np.float32), ["a"] * 60, k=5)
    assert {f.image_ids[0] for f in found} == {17}
    assert {f.kind for f in found} == {"outlier", "class_outlier"}
    assert "unlike the other 'a' images" in next(f.explanation for f in found if f.kind == "class_outlier")


def test_flipped_label_in_a_separable_set_is_found_with_a_suggestion() -> None:
    rng = np.random.default_rng(1)
    n = 60
    y = np.repeat([0, 1, 2], n // 3)
    centres = np.eye(3, 6) * 4
    feats = (centres[y] + rng.normal(0, 1, (n, 6))).astype(np.float32)
    given = y.copy()
    given[5] = 2  # a class-0 image labelled as class 2
    probs = cross_val_pred_probs(feats, given, 3, folds=5)
    assert probs.shape == (n, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    found = find_label_issues(list(range(100, 100 + n)), given, probs, ["cat", "dog", "owl"])
    assert [f.image_ids[0] for f in found] == [105]
    assert found[0].details["given_label"] == "owl" and found[0].details["suggested_label"] == "cat"
    assert found[0].details["confidence"] > 0.5


def test_imbalance_reports_tiny_class_and_remedy() -> None:
    found = find_imbalance({"a": 500, "b": 40, "c": 3})
    kinds = {f.kind: f for f in found}
    assert kinds["tiny_class"].details["class"] == "c"
    assert "sampler" in kinds["class_imbalance"].details["remedy"]
    assert find_imbalance({"a": 50, "b": 45}) == []


def test_cnn_label_model_scores_out_of_fold_and_catches_a_flipped_digit(tmp_path: Path) -> None:
    """The CNN path on tiny real data: out-of-fold logits, ensembled with the linear model, put the one
    flipped digit among the flags with the right suggestion."""
    root = write_digits(tmp_path / "d", per_class=40, classes=3, size=16)
    x = np.stack(
        [np.asarray(Image.open(f).convert("RGB")) for c in range(3) for f in sorted((root / str(c)).iterdir())]
    )
    y = np.repeat([0, 1, 2], 40)
    given = y.copy()
    given[4] = 1  # a '0' labelled '1'
    logits = cnn_cross_val_logits(x, given, 3, folds=2, budget_s=None, epochs=30, size=16)
    assert logits.shape == (120, 3) and np.isfinite(logits).all()
    assert (logits.argmax(1) == y).mean() > 0.8  # out-of-fold, far above chance (1/3)
    probs = combine_probs(logits, cross_val_pred_probs(hand_features(x), given, 3), given)
    assert np.allclose(probs.sum(1), 1, atol=1e-6)
    found = find_label_issues(list(range(120)), given, probs, ["0", "1", "2"])
    flipped = [f for f in found if f.image_ids[0] == 4]
    assert flipped and flipped[0].details["suggested_label"] == "0"
    assert len(found) <= 5


def test_label_model_auto_picks_logistic_on_pretrained_cnn_only_for_large_sets_rejects_unknown_names() -> None:
    from picsift.config import CleanConfig
    from picsift.curate.pipeline import resolve_label_model
    from picsift.errors import ConfigError

    cfg = CleanConfig().validate()
    assert resolve_label_model(cfg, 300) == "ridge" and resolve_label_model(cfg, 2000) == "cnn"
    assert resolve_label_model(CleanConfig(label_model="linear"), 5000) == "ridge"
    assert resolve_label_model(CleanConfig(label_model="cnn"), 50) == "cnn"
    # on a pretrained embedding, auto is the cross-validated logistic head whatever the size
    assert resolve_label_model(cfg, 300, pretrained=True) == resolve_label_model(cfg, 5000, True) == "logistic"
    assert resolve_label_model(CleanConfig(label_model="cnn"), 5000, pretrained=True) == "cnn"
    with pytest.raises(ConfigError, match="label_c must be a finite number greater than 0, got 0"):
        CleanConfig(label_c=0).validate()
    with pytest.raises(ConfigError, match="auto, linear, cnn"):
        CleanConfig(label_model="resnet").validate()
    with pytest.raises(ConfigError, match="label_filter must be one of auto, fdr, both"):
        CleanConfig(label_filter="top10").validate()
    with pytest.raises(ConfigError, match=r"label_max_fdr must be a finite number in \(0, 1\), got 0"):
        CleanConfig(label_max_fdr=0).validate()


def test_label_extractors_auto_adds_the_other_installed_backbones_only_to_a_weak_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import picsift.models.pretrained as pretrained
    from picsift.config import CleanConfig
    from picsift.curate.pipeline import added_label_extractors
    from picsift.errors import ConfigError
    from picsift.features.pretrained import EmbeddingChoice
    from picsift.models.pretrained.provider import PretrainedWeights

    def installed(name: str) -> PretrainedWeights:
        return PretrainedWeights(name, None, f"package {name}", "package", "efficientnet_pytorch", None)

    monkeypatch.setattr(
        pretrained, "available_pretrained", lambda: [installed("efficientnet_lite0"), installed("efficientnet_lite2")]
    )
    lite0 = EmbeddingChoice("efficientnet_lite0", True, "embedding: efficientnet_lite0")
    auto = CleanConfig().validate()
    assert added_label_extractors(auto, lite0, weak=True) == ["efficientnet_lite2"]
    assert added_label_extractors(auto, lite0, weak=False) == []
    # the stage on Lite0 at another size still counts as Lite0; hand features are not a backbone to add to
    at_160 = EmbeddingChoice("efficientnet_lite0@160", True, "embedding: efficientnet_lite0@160")
    assert added_label_extractors(auto, at_160, weak=True) == ["efficientnet_lite2"]
    assert added_label_extractors(auto, EmbeddingChoice("hand", False, "hand"), weak=True) == []
    assert added_label_extractors(CleanConfig(label_extractors="none"), lite0, weak=True) == []
    named = CleanConfig(label_extractors="efficientnet_lite2@260, hog").validate()
    assert added_label_extractors(named, lite0, weak=False) == ["efficientnet_lite2@260", "hog"]
    for bad in ("", "auto,hog", "hog,,lbp"):
        with pytest.raises(ConfigError, match="label_extractors must be auto, none or a comma list"):
            CleanConfig(label_extractors=bad).validate()


def _weak_model_probs(
    seed: int, n: int = 2000, k: int = 10, flips: int = 100
) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """Out-of-sample-like probabilities of a model right about 70% of the time on k classes, and labels with
    `flips` of them moved to another class at random (the planted benchmark's noise)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    # The model's own guess: the true class 70% of the time, else a random other one; soft probabilities.
    guess = np.where(rng.random(n) < 0.7, truth, (truth + rng.integers(1, k, n)) % k)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), guess] += 3.0
    logits[np.arange(n), truth] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(n, flips, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, k, flips)) % k
    return given, probs, {int(i) for i in flipped}


def test_fdr_rule_keeps_precision_with_a_weak_model_where_confident_learning_flags_twice_too_many() -> None:
    given, probs, flipped = _weak_model_probs(0)
    sel = fdr_label_issues(given, probs, max_fdr=0.2)
    flagged = set(np.flatnonzero(sel.issues).tolist())
    # 100 of 2,000 flipped (0.05); the estimate is an upper bound: the model's own confident errors count too
    # (this synthetic model is wrong with confidence on 30% of the images, so they pass for flipped labels).
    assert sel.noise_rate is not None and 0.045 <= sel.noise_rate <= 0.09
    assert sel.threshold is not None and sel.est_precision is not None and sel.est_precision >= 0.8
    precision = len(flagged & flipped) / len(flagged)
    assert 30 <= len(flagged) <= 120 and precision >= 0.45
    # cleanlab's "both" flags 4x as many on this model (agreeing with 69% of the labels), under 1 in 4 rightly.
    cl = set(np.flatnonzero(select_label_issues(given, probs, "both").issues).tolist())
    assert len(cl) > 300 and len(cl & flipped) / len(cl) < 0.25
    # A looser rate flags more; every flagged image's label is against the model's top class.
    looser = fdr_label_issues(given, probs, max_fdr=0.4)
    assert looser.issues.sum() > sel.issues.sum()
    assert not (sel.issues & (probs.argmax(1) == given)).any()
    assert sel.to_dict()["rule"] == "fdr" and sel.to_dict()["flagged"] == len(flagged)
    # auto: this model agrees with under 80% of the labels, so the fdr rule, the same flags
    auto = select_label_issues(given, probs)
    assert auto.rule == "fdr" and (auto.issues == sel.issues).all()


def test_fdr_rule_flags_nothing_on_clean_labels_and_refuses_bad_arguments() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 400)
    probs = np.full((400, 4), 0.02)
    probs[np.arange(400), y] = 0.94
    assert fdr_label_issues(y, probs).issues.sum() == 0
    assert select_label_issues(y, probs).rule == "both"  # auto: a model that agrees with the labels
    with pytest.raises(ValueError, match="max_fdr must be in"):
        fdr_label_issues(y, probs, max_fdr=1.0)
    with pytest.raises(ValueError, match="pred_probs must be"):
        fdr_label_issues(y, probs[:, :1])
    with pytest.raises(ValueError, match="filter_by must be one of"):
        select_label_issues(y, probs, "most_wrong")
