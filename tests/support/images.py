"""Real images made on the fly (scikit-learn digits, textures), dataset locations and the skip-or-fail policy."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"


def require(condition: bool, reason: str) -> None:
    """Skip when a machine lacks an optional resource; fail instead under PICSIFT_REQUIRE_ALL=1 (CI)."""
    if condition:
        return
    if os.environ.get("PICSIFT_REQUIRE_ALL") == "1":
        pytest.fail(f"required resource missing (PICSIFT_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


def write_digits(root: Path, per_class: int = 30, classes: int = 3, size: int = 16, seed: int = 0) -> Path:
    """scikit-learn's digits as PNGs in folder-per-class layout (real, always available)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in range(classes):
        idx = np.flatnonzero(digits.target == c)[:per_class]
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for i in idx:
            img = (digits.images[i] / 16.0 * 255).astype(np.uint8)
            img = np.clip(img.astype(int) + rng.integers(0, 3, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img, "L").resize((size, size), Image.NEAREST).convert("RGB").save(
                root / str(c) / f"{i}.png"
            )
    return root


def texture(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random colour picture: low-frequency noise upsampled, so it has real structure."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.BICUBIC)
    detail = rng.normal(0, 12, (size, size, 3))
    return np.clip(np.asarray(img, np.float64) + detail, 0, 255).astype(np.uint8)


def jpeg_crop_copy(a: np.ndarray, crop: float = 0.08, quality: int = 40, bright: float = 1.15) -> np.ndarray:
    s = a.shape[0]
    c = int(round(s * crop))
    img = Image.fromarray(a).crop((c, 0, s, s - c)).resize((s, s), Image.BILINEAR)
    img = Image.fromarray(np.clip(np.asarray(img, np.float64) * bright, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))
