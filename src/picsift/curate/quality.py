"""Image quality checks on decoded uint8 pixels: unreadable, too small, extreme aspect ratio, blurry,
too dark, too bright, low information and grayscale-in-a-colour-dataset.

Thresholds that depend on the data (blur) are robust z-scores against the dataset itself, because a
sharp 32-pixel thumbnail and a sharp 12-megapixel photo have nothing in common in absolute terms.

Blur is measured at a finer scale than the other checks (`fine_metrics`: up to 256 px, from the original file):
a 64 px copy of a 500 px photo hides a 3-pixel Gaussian blur almost entirely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from picsift.curate.findings import Finding
from picsift.data.images import image_file, resize_square, to_rgb

FINE_SIDE = 256  # sharpness is measured on a copy this large (never enlarged beyond the original)


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the quality checks: sizes in px, luma in 0..255, blur as a robust z-score of log sharpness."""

    min_side: int = 16  # pixels; also anything under a quarter of the dataset's median side
    max_aspect: float = 4.0  # long side / short side
    blur_z: float = 4.0  # robust z below the dataset's median (log sharpness)
    dark_p95: float = 64.0  # luma: the brightest 5% of pixels are still below this
    bright_p05: float = 225.0  # luma: the darkest 5% of pixels are still above this
    min_std: float = 6.0  # luma standard deviation below this = near-constant
    gray_chroma: float = 2.0  # mean |channel difference| below this = grayscale
    colour_fraction: float = 0.5  # grayscale is flagged only when this share of the data is colour


def luma(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H, W) float32 luma (ITU-R 601)."""
    xf = x.astype(np.float32)
    return xf[..., 0] * 0.299 + xf[..., 1] * 0.587 + xf[..., 2] * 0.114


def laplacian_variance(gray: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian per image, (N, H, W) -> (N,). The classic blur measure."""
    lap = gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1] + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:] - 4.0 * gray[:, 1:-1, 1:-1]
    return lap.reshape(len(gray), -1).var(axis=1)


def quality_metrics(x: np.ndarray, batch: int = 1024) -> dict[str, np.ndarray]:
    """Per-image measurements of (N, H, W, 3) uint8 pixels, each an (N,) float array."""
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 pixels, got {x.shape} {x.dtype}")
    keys = ("mean", "std", "p05", "p95", "clipped", "lapvar", "gradient", "chroma")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        g = luma(xb)
        flat = g.reshape(len(g), -1)
        parts["mean"].append(flat.mean(1))
        parts["std"].append(flat.std(1))
        q = np.percentile(flat, [5, 95], axis=1)
        parts["p05"].append(q[0])
        parts["p95"].append(q[1])
        parts["clipped"].append(((flat <= 2.0) | (flat >= 253.0)).mean(1))
        parts["lapvar"].append(laplacian_variance(g))
        parts["gradient"].append(
            (np.diff(g, axis=2) ** 2).reshape(len(g), -1).mean(1)
            + (np.diff(g, axis=1) ** 2).reshape(len(g), -1).mean(1)
        )
        xi = xb.astype(np.int16)
        chroma = (
            np.abs(xi[..., 0] - xi[..., 1]) + np.abs(xi[..., 1] - xi[..., 2]) + np.abs(xi[..., 0] - xi[..., 2])
        ) / 3.0
        parts["chroma"].append(chroma.reshape(len(xb), -1).mean(1))
    out = {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in parts.items()}
    # Sharpness as the share of the finest detail in all edge energy (Laplacian variance over mean squared
    # gradient): blur removes the finest frequencies first, while a merely low-contrast or smooth image
    # loses both alike. On planted CIFAR-10 blur this separated blurred from clean images where plain
    # Laplacian variance (even divided by contrast) confused them with naturally soft photos.
    out["sharpness"] = np.log((out["lapvar"] + 1e-3) / (out["gradient"] + 1e-3))
    return out


def _fine_copy(path: str, side: int, sha256: str | None = None, cache_dir: Path | None = None) -> np.ndarray | None:
    """The picture at up to `side` px (shorter side, centre crop; JPEGs decoded at a reduced scale), or None.
    An object URL is read through the cache in `cache_dir` under `sha256` (`picsift.data.images.image_file`)."""
    try:
        with Image.open(image_file(path, sha256, cache_dir)) as img:
            img.draft("RGB", (side, side))  # JPEG: DCT-domain downscaling, never below (side, side)
            rgb = to_rgb(img)
            return resize_square(rgb, min(side, *rgb.size))
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError):
        return None


def fine_metrics(
    paths: Sequence[str],
    x: np.ndarray,
    sizes: Sequence[tuple[int | None, int | None]] | None = None,
    side: int = FINE_SIDE,
    threads: int = 4,
    sha256s: Sequence[str] | None = None,
    cache_dir: Path | None = None,
) -> dict[str, np.ndarray]:
    """`quality_metrics` of each image, measured on the original file at up to `side` px where the original is at
    least twice as large as the decoded copy `x` ((N, S, S, 3) uint8, one per path), else on `x` itself.

    Why: blur removes the finest detail, and downscaling a 500 px photo to 64 px removes it from every image alike,
    so a radius-3 Gaussian blur scored about -1 robust SD at 64 px and -4.5 to -8.7 at 256 px on hymenoptera
    photos (clean photos: above -2.1). Files that no longer decode keep their `x` measurements; `sizes` (each
    original's (width, height)) saves opening files known to be too small. Images in object storage are read
    through the workspace's object cache when `sha256s` (one per path) and `cache_dir` are given, so a clean does
    not download again what import or training already fetched.
    """
    from picsift.pools import thread_pool

    out = {k: v.copy() for k, v in quality_metrics(x).items()}
    if len(paths) != len(x):
        raise ValueError(f"{len(paths)} paths but {len(x)} images")
    small = 2 * (x.shape[1] if x.ndim == 4 else 0)

    def measure(i: int) -> dict[str, np.ndarray] | None:
        w, h = sizes[i] if sizes is not None else (None, None)
        if w and h and min(w, h) < small:
            return None
        copy = _fine_copy(paths[i], side, sha256s[i] if sha256s is not None else None, cache_dir)
        return quality_metrics(copy[None]) if copy is not None and min(copy.shape[:2]) >= small else None

    with thread_pool(max(1, threads)) as pool:  # PIL decodes without the GIL
        for i, m in enumerate(pool.map(measure, range(len(paths)))):
            if m is not None:
                for k in out:
                    out[k][i] = m[k][0]
    return out


def copy_quality(m: dict[str, np.ndarray]) -> np.ndarray:
    """A score for choosing the best of several copies of one picture (higher is better), from `quality_metrics`:
    log edge sharpness (blur lowers it) + log luma contrast (darkening, fading lower it) - 4 x the share of
    clipped pixels (luma at 0-2 or 253-255: over- or under-exposure). Only differences between copies of the
    same picture mean anything. (N,) float."""
    return np.asarray(m["sharpness"] + np.log(m["std"] + 1.0) - 4.0 * m["clipped"], dtype=np.float64)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(v - median) / (1.4826 * MAD): a z-score that a few extreme images cannot distort."""
    med = float(np.median(values)) if len(values) else 0.0
    mad = float(np.median(np.abs(values - med))) * 1.4826 if len(values) else 0.0
    return (values - med) / (mad if mad > 1e-9 else 1.0)


def find_quality_issues(
    ids: Sequence[int],
    x: np.ndarray,
    sizes: Sequence[tuple[int | None, int | None]] | None = None,
    thresholds: QualityThresholds | None = None,
    metrics: dict[str, np.ndarray] | None = None,
) -> list[Finding]:
    """Findings for decodable images. `x`: (N, H, W, 3) uint8 (a fixed-size decoded copy);
    `sizes`: each image's original (width, height), for the size and aspect checks; `metrics`: measurements to
    use instead of `quality_metrics(x)` (e.g. `fine_metrics`, which sees blur that a small copy hides)."""
    t = thresholds or QualityThresholds()
    if len(ids) != len(x):
        raise ValueError(f"{len(ids)} ids but {len(x)} images")
    findings: list[Finding] = []
    if len(x) == 0:
        return findings
    m = metrics if metrics is not None else quality_metrics(x)
    informative = m["std"] >= t.min_std
    # Blur statistics over informative images only: constant images have no edges to measure.
    sharp_z = np.zeros(len(x))
    if informative.sum() >= 5:
        med = float(np.median(m["sharpness"][informative]))
        mad = float(np.median(np.abs(m["sharpness"][informative] - med))) * 1.4826 or 1.0
        sharp_z = (m["sharpness"] - med) / mad
    colour_share = float((m["chroma"] >= t.gray_chroma).mean())
    sides = [min(w, h) for w, h in (sizes or []) if w and h]
    min_side = max(t.min_side, int(0.25 * float(np.median(sides)))) if sides else t.min_side
    for i, image_id in enumerate(ids):
        iid = (int(image_id),)
        if sizes is not None:
            findings += _shape_findings(iid, sizes[i], min_side, t)
        findings += _pixel_findings(iid, i, m, bool(informative[i]), float(sharp_z[i]), colour_share, t)
    return findings


def _shape_findings(
    iid: tuple[int], size: tuple[int | None, int | None], min_side: int, t: QualityThresholds
) -> list[Finding]:
    """too_small and extreme_aspect, from the original (width, height)."""
    w, h = size
    if not (w and h):
        return []
    out = []
    if min(w, h) < min_side:
        out.append(
            Finding(
                "too_small",
                iid,
                float(min_side / max(1, min(w, h))),
                f"only {w}x{h} pixels (shorter side under {min_side})",
                {"width": w, "height": h},
            )
        )
    aspect = max(w, h) / max(1, min(w, h))
    if aspect > t.max_aspect:
        out.append(
            Finding(
                "extreme_aspect",
                iid,
                float(aspect),
                f"aspect ratio {aspect:.1f}:1 ({w}x{h}); training crops it to a square",
                {"width": w, "height": h},
            )
        )
    return out


def _pixel_findings(
    iid: tuple[int], i: int, m: dict[str, np.ndarray], informative: bool, sharp_z: float, colour_share: float,
    t: QualityThresholds,
) -> list[Finding]:  # fmt: skip
    """low_information or blurry, too_dark, too_bright and grayscale, from image i's measurements in `m`."""
    out = []
    if not informative:
        out.append(
            Finding(
                "low_information",
                iid,
                float(t.min_std - m["std"][i]),
                f"almost one flat colour (brightness spread {m['std'][i]:.1f} of 255)",
                {"std": round(float(m["std"][i]), 2), "mean": round(float(m["mean"][i]), 1)},
            )
        )
    elif sharp_z < -t.blur_z:
        out.append(
            Finding(
                "blurry",
                iid,
                float(-sharp_z),
                f"blurry: edge sharpness {-sharp_z:.1f} robust SDs below the dataset median",
                {"laplacian_var": round(float(m["lapvar"][i]), 2), "sharpness_z": round(float(sharp_z), 2)},
            )
        )
    if m["p95"][i] < t.dark_p95:
        out.append(
            Finding(
                "too_dark",
                iid,
                float(1.0 - m["p95"][i] / 255.0),
                f"too dark: 95% of pixels are darker than {m['p95'][i]:.0f}/255",
                {"p95": round(float(m["p95"][i]), 1), "mean": round(float(m["mean"][i]), 1)},
            )
        )
    if m["p05"][i] > t.bright_p05:
        out.append(
            Finding(
                "too_bright",
                iid,
                float(m["p05"][i] / 255.0),
                f"too bright / washed out: 95% of pixels are brighter than {m['p05'][i]:.0f}/255",
                {"p05": round(float(m["p05"][i]), 1), "mean": round(float(m["mean"][i]), 1)},
            )
        )
    if colour_share >= t.colour_fraction and m["chroma"][i] < t.gray_chroma and informative:
        out.append(
            Finding(
                "grayscale",
                iid,
                float(t.gray_chroma - m["chroma"][i]),
                f"grayscale image in a dataset where {colour_share:.0%} of images are in colour",
                {"chroma": round(float(m["chroma"][i]), 2)},
            )
        )
    return out


def unreadable_findings(ids: Sequence[int], errors: Sequence[str | None], paths: Sequence[str]) -> list[Finding]:
    """One "unreadable" finding (score 1.0) per image, with its decode error and path."""
    return [
        Finding("unreadable", (int(i),), 1.0, f"cannot be decoded: {err or 'unknown error'}", {"path": p})
        for i, err, p in zip(ids, errors, paths, strict=True)
    ]
