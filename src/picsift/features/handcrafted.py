"""Handcrafted image descriptors (scikit-image): HOG, LBP and colour histograms.

Each function maps uint8 (N, S, S, 3) to float32 (N, D), with D fixed for a given S. Images are
resized to the extractor's canonical size before these are called, so D never depends on the data.
"""

from __future__ import annotations

import numpy as np

from picsift import progress


def _gray(x: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S, 3) -> float64 (N, S, S) luminance in [0, 1] (ITU-R BT.601 weights)."""
    return (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114) / 255.0


def hog_features(x: np.ndarray) -> np.ndarray:
    """Histogram of oriented gradients: 9 orientations, 8x8-pixel cells, 2x2-cell blocks, L2-Hys.

    The Dalal-Triggs setting; at 64x64 that is 7*7 blocks * 4 cells * 9 bins = 1,764 values.
    """
    from skimage.feature import hog

    gray = _gray(x)
    rows = [
        hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
        for g in progress.track(gray, "HOG features", total=len(gray))
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(x), -1)


def lbp_features(x: np.ndarray, grid: int = 4, points: int = 8, radius: float = 1.0) -> np.ndarray:
    """Uniform local binary patterns: a (points + 2)-bin histogram per cell of a grid x grid layout.

    Rotation-invariant uniform codes capture texture (edges, spots, flat areas) independent of colour;
    per-cell histograms keep coarse layout. 4x4 cells * 10 bins = 160 values, each cell L1-normalised.
    """
    from skimage.feature import local_binary_pattern

    n, s = x.shape[0], x.shape[1]
    bins = points + 2
    edges = np.linspace(0, s, grid + 1).astype(int)
    out = np.zeros((n, grid, grid, bins), dtype=np.float32)
    gray = (_gray(x) * 255).astype(np.uint8)
    for i, g in enumerate(progress.track(gray, "LBP features", total=n)):
        codes = local_binary_pattern(g, points, radius, method="uniform").astype(np.int64)
        for a in range(grid):
            for b in range(grid):
                cell = codes[edges[a] : edges[a + 1], edges[b] : edges[b + 1]]
                h = np.bincount(cell.ravel(), minlength=bins)[:bins].astype(np.float32)
                out[i, a, b] = h / max(1.0, float(h.sum()))
    return out.reshape(n, -1)


def color_hist_features(x: np.ndarray, bins: int = 8) -> np.ndarray:
    """Joint RGB histogram with bins^3 cells (512 by default), L1-normalised then square-rooted.

    The square root (Hellinger embedding) makes Euclidean distance between histograms behave like
    the Bhattacharyya distance, which suits k-NN, SVMs and k-means far better than raw counts.
    """
    n = x.shape[0]
    q = (x.astype(np.int64) * bins) // 256  # (N, S, S, 3) bin index per channel
    codes = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    flat = codes.reshape(n, -1)
    offsets = (np.arange(n, dtype=np.int64) * bins**3)[:, None]
    counts = np.bincount((flat + offsets).ravel(), minlength=n * bins**3).reshape(n, bins**3)
    hist = counts / np.maximum(1, counts.sum(axis=1, keepdims=True))
    return np.sqrt(hist).astype(np.float32)
