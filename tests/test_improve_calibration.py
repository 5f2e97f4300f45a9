"""Temperature scaling: never worse validation NLL, argmax unchanged, applied by the Predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from picsift.improve.calibration import apply_temperature, ece, fit_temperature, nll
from picsift.inference import read_spec
from picsift.runs import RunFolder
from support.improve import make_workspace, quick_config


def overconfident(n: int = 600, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are 70% right but claim ~99% confidence."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + 1) % k)
    logits = rng.normal(0, 0.5, (n, k))
    logits[np.arange(n), pred] += 6.0
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), y


def test_temperature_softens_overconfident_probabilities() -> None:
    probs, y = overconfident()
    t = fit_temperature(probs, y)
    assert t > 1.5
    after = apply_temperature(probs, t)
    assert nll(after, y) < nll(probs, y)
    assert ece(after, y)[0] < ece(probs, y)[0]
    assert (after.argmax(1) == probs.argmax(1)).all()


def test_temperature_never_increases_nll_on_calibrated_data() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), 400)
    y = np.array([rng.choice(3, p=p) for p in probs])  # calibrated by construction
    t = fit_temperature(probs, y)
    assert nll(apply_temperature(probs, t), y) <= nll(probs, y) + 1e-9


def test_calibrate_run_writes_file_and_predictor_applies_it(tmp_path: Path) -> None:
    from picsift import train
    from picsift.improve.calibration import calibrate
    from picsift.improve.rundata import split_data
    from picsift.inference import Predictor

    ws = make_workspace(tmp_path)
    run_dir = train.run(quick_config(ws)).run_dir
    result = calibrate(run_dir)
    spec = read_spec(RunFolder(run_dir))
    saved = spec.fits["calibration"]
    assert spec.temperature == saved["temperature"] == result["temperature"] > 0
    assert saved["val"]["nll_after"] <= saved["val"]["nll_before"] + 1e-9
    assert "test" in saved and (run_dir / "calibration.png").stat().st_size > 1000
    val = split_data(run_dir, "val")
    calibrated = Predictor.from_run(run_dir)
    raw = calibrated.predict_raw(val.x)
    probs = calibrated.predict_arrays(val.x)
    np.testing.assert_allclose(probs, apply_temperature(raw, result["temperature"]), atol=1e-5)
    assert (probs.argmax(1) == raw.argmax(1)).all()


def test_a_model_right_on_every_validation_image_says_so_without_claiming_certainty() -> None:
    """All right: the NLL minimum runs off to T -> 0, so T matches the mean confidence to (n + 1) / (n + 2)."""
    from picsift.improve.calibration import apply_temperature, fit_temperature

    rng = np.random.default_rng(0)
    n, k = 179, 10
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 0.3, (n, k))
    logits[np.arange(n), y] += 3.0  # right every time, top-1 confidence about 0.7 (label smoothing's look)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    t = fit_temperature(probs, y)
    confident = apply_temperature(probs, t).max(1).mean()
    assert t < 1.0 and abs(confident - (n + 1) / (n + 2)) < 1e-3
    assert fit_temperature(apply_temperature(probs, 0.01), y) == 1.0  # already that sure: left alone
