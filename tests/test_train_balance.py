"""Imbalance handling: strategy choice, balanced batches, weights, oversampling, class thresholds."""

from __future__ import annotations

import numpy as np
import torch

from picsift.improve.thresholds import fit_class_scales, score
from picsift.train.balance import (
    balanced_sampler,
    choose_strategy,
    inverse_frequency_weights,
    oversample,
    plan,
)


def test_auto_strategy_follows_the_imbalance_ratio() -> None:
    assert choose_strategy(np.array([100, 90, 80]), "auto") == "none"
    assert choose_strategy(np.array([1000, 100]), "auto") == "weights"
    assert choose_strategy(np.array([1000, 10]), "auto") == "sampler"
    assert choose_strategy(np.array([1000, 10]), "weights") == "weights"


def test_balanced_sampler_equalises_class_frequencies_in_batches() -> None:
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(y))
    sampler = balanced_sampler(y, 3, torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=100, sampler=sampler)
    drawn = torch.cat([b[0] for b in loader]).numpy()
    freq = np.bincount(drawn, minlength=3) / len(drawn)
    assert len(drawn) == len(y)
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.06)
    plain = np.bincount(y) / len(y)
    assert abs(plain[2] - 1 / 3) > 0.3  # without the sampler the rare class is 1% of batches


def test_class_weights_are_inverse_frequency_with_unit_mean() -> None:
    counts = np.array([300, 100, 50])
    w = inverse_frequency_weights(counts)
    assert w[2] > w[1] > w[0]
    assert np.isclose((w * counts).sum() / counts.sum(), 1.0)
    sampler, weights, decided = plan(np.repeat([0, 1, 2], counts), "auto", 3)
    assert sampler is None and weights is not None and decided.strategy == "weights"


def test_oversample_repeats_minority_classes_up_to_the_largest() -> None:
    from picsift.models.registry import DataConfig
    from picsift.train.data import TrainData

    y = np.array([0] * 20 + [1] * 4)
    x = np.arange(len(y), dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    data = TrainData(["a", "b"], DataConfig(2), x, y, x[:0], y[:0], train_ids=list(range(len(y))))
    out = oversample(data, "auto", seed=0)
    assert np.bincount(out.y_train).tolist() == [20, 20]
    assert set(out.train_ids) == set(range(len(y)))  # every original image is kept
    assert (out.x_train[:, 0, 0, 0] == np.array(out.train_ids)).all()  # images follow their labels


def test_class_thresholds_raise_macro_f1_of_a_biased_classifier() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    probs = rng.dirichlet(np.ones(3) * 2, 600) * 0.4
    probs[np.arange(600), y] += 0.3
    probs[:, 0] += 0.35  # a bias towards class 0 (as after training on a long tail)
    probs /= probs.sum(1, keepdims=True)
    scales, before, after = fit_class_scales(probs, y, "macro_f1")
    assert after > before + 0.05
    assert np.isclose(score(y, (probs * scales).argmax(1), "macro_f1", 3), after)
    assert scales[0] < 1.0


def test_mixup_and_cutmix_give_soft_targets() -> None:
    from picsift.config import TrainConfig
    from picsift.train.loop import batch_mix

    assert batch_mix(TrainConfig(), 4) is None
    mix = batch_mix(TrainConfig(mixup=0.2, cutmix=1.0), 4)
    assert mix is not None
    x, t = mix(torch.rand(8, 3, 8, 8), torch.arange(8) % 4)
    assert t.shape == (8, 4)
    np.testing.assert_allclose(t.sum(1).numpy(), 1.0, atol=1e-5)
