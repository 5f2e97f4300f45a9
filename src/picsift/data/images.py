"""Robust image decoding: every format quirk becomes a plain 8-bit RGB image or a clear reason why not."""

from __future__ import annotations

import contextlib
import io
import math
import re
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from picsift.data.formats import IMAGE_EXTENSIONS, PILLOW_FORMATS, missing_decoder_for, signature_format
from picsift.data.storage import cached_bytes, image_source, is_remote, read_bytes
from picsift.errors import ImageDecodeError, StorageError

__all__ = [
    "IMAGE_EXTENSIONS", "MAX_PIXELS", "ImageInfo", "bomb_pixels", "catalog_source", "image_file", "load_rgb", "probe",
    "resize_square", "to_rgb",
]  # fmt: skip

# Refuse images above ~89 MP (Pillow's own warning threshold) instead of exhausting memory.
MAX_PIXELS = 89_478_485
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageInfo:
    """What probing an image found: size in pixels, Pillow format and mode, frame count, EXIF time and camera,
    GPS latitude and longitude in degrees (None when absent)."""

    width: int
    height: int
    format: str
    mode: str
    n_frames: int
    exif_time: str | None = None
    exif_camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


def _remote_bytes(url: str) -> bytes:
    """A URL's bytes (`picsift.data.storage`); one that cannot be read is an ImageDecodeError saying why."""
    try:
        return read_bytes(url)
    except StorageError as e:
        raise ImageDecodeError(f"cannot be read: {e}") from e


def catalog_source(path: str, sha256: str | None = None, cache_dir: Path | None = None) -> str | bytes:
    """What `load_rgb` reads for a catalog image: a local path as it is, an object URL's bytes through the
    content-addressed cache in `cache_dir` (`picsift.data.storage.image_source`). ImageDecodeError when a URL
    cannot be read (missing, denied, unreachable), as for a file that does not decode."""
    try:
        return image_source(path, sha256, cache_dir)
    except StorageError as e:
        raise ImageDecodeError(f"cannot be read: {e}") from e


def image_file(path: str | Path, sha256: str | None = None, cache_dir: Path | None = None) -> str | Path | io.BytesIO:
    """What `PIL.Image.open` reads for a local path or a URL (its bytes, read now: through the content-addressed
    cache in `cache_dir` when `sha256` and `cache_dir` are given, so a catalog object is downloaded once). OSError
    when a URL cannot be read, as when a local file cannot."""
    if isinstance(path, str) and is_remote(path):
        try:
            data = cached_bytes(path, sha256, cache_dir) if sha256 and cache_dir is not None else read_bytes(path)
            return io.BytesIO(data)
        except StorageError as e:
            raise OSError(str(e)) from e
    return path


def _file_object(source: str | Path | bytes) -> io.BytesIO | str | Path:
    """What Image.open reads; an empty file is an ImageDecodeError before Pillow sees it."""
    empty = not source if isinstance(source, bytes) else Path(source).stat().st_size == 0
    if empty:
        raise ImageDecodeError("empty file (0 bytes)")
    return io.BytesIO(source) if isinstance(source, bytes) else source


def bomb_pixels(e: Exception) -> int | None:
    """The pixel count Pillow's DecompressionBombError/Warning reports ("Image size (N pixels) exceeds limit of
    L pixels, ..."), or None when its message has none."""
    found = re.search(r"\((\d+) pixels\)", str(e))
    return int(found.group(1)) if found else None


def _decode_error(e: Exception, source: str | Path | bytes) -> ImageDecodeError:
    """Pillow's many ways of failing -> one ImageDecodeError with the reason a person can act on."""
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        pixels = bomb_pixels(e)
        size = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
        return ImageDecodeError(f"decompression bomb refused: {size}; picsift decodes at most {MAX_PIXELS:,}")
    if isinstance(e, UnidentifiedImageError):
        head = _head(source)
        claimed = signature_format(head)
        if claimed is not None:  # a PNG cut after its signature, a JPEG with a damaged header
            return ImageDecodeError(
                f"corrupt image: the data starts like {claimed.label} but its header cannot be read"
            )
        return ImageDecodeError(missing_decoder_for(head) or "not an image (unrecognised format)")
    if isinstance(e, OSError):
        text = str(e)
        if "truncated" in text.lower() or "premature end" in text.lower():
            return ImageDecodeError(f"truncated image: {text}")
        return ImageDecodeError(f"corrupt image: {text}")
    return ImageDecodeError(f"corrupt image: {type(e).__name__}: {e}")


_DECODE_FAILURES = (
    Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError, SyntaxError, EOFError,
    MemoryError, struct.error, IndexError, TypeError,
)  # fmt: skip


def _open(source: str | Path | bytes) -> Image.Image:
    if isinstance(source, str) and is_remote(source):  # an object-storage or http(s) URL: its bytes
        source = _remote_bytes(source)
    fp = _file_object(source)
    # Truncated files must fail loudly rather than decode as half-grey pictures.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    img: Image.Image | None = None
    try:
        # warnings.catch_warnings() swaps process-wide state, so concurrent decoders (import and the
        # decoded cache use thread pools) must not interleave it; opening only parses the header.
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow on damaged metadata ("Corrupt EXIF data")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=PILLOW_FORMATS)  # exactly the readable formats (picsift.data.formats)
        if img.width * img.height > MAX_PIXELS:
            raise ImageDecodeError(
                f"decompression bomb refused: {img.width}x{img.height} = {img.width * img.height:,} pixels; "
                f"picsift decodes at most {MAX_PIXELS:,}"
            )
        img.load()
        return img
    except (ImageDecodeError, *_DECODE_FAILURES) as e:
        if img is not None:
            img.close()
        if isinstance(e, ImageDecodeError):
            raise
        raise _decode_error(e, source) from e


def _head(source: str | Path | bytes, n: int = 64) -> bytes:
    if isinstance(source, bytes):
        return source[:n]
    try:
        with open(source, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _gps_to_degrees(value: object, ref: object) -> float | None:
    try:
        d, m, s = (float(x) for x in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60.0 + s / 3600.0
    if not math.isfinite(deg):  # a 0/0 rational in the EXIF data
        return None
    return -deg if str(ref).upper() in ("S", "W") else deg


def _exif_fields(img: Image.Image) -> dict[str, object]:
    # Pillow warns on stderr about damaged EXIF data; picsift reads what it can and says nothing.
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _read_exif_fields(img)


def _read_exif_fields(img: Image.Image) -> dict[str, object]:
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must never fail an import
        return {}
    if not exif:
        return {}
    out: dict[str, object] = {}
    tags = {ExifTags.TAGS.get(k, k): v for k, v in exif.items()}
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        tags.update({ExifTags.TAGS.get(k, k): v for k, v in sub.items()})
    except Exception:
        pass
    when = tags.get("DateTimeOriginal") or tags.get("DateTime")
    if when:
        out["exif_time"] = str(when).strip("\x00 ")[:32]
    camera = " ".join(str(tags[k]).strip("\x00 ") for k in ("Make", "Model") if tags.get(k))
    if camera:
        out["exif_camera"] = camera
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        if gps:
            lat = _gps_to_degrees(gps.get(2), gps.get(1))
            lon = _gps_to_degrees(gps.get(4), gps.get(3))
            if lat is not None and lon is not None:
                out["gps_lat"], out["gps_lon"] = lat, lon
    except Exception:
        pass
    return out


def probe(source: str | Path | bytes) -> ImageInfo:
    """Fully decode once (to catch truncation) and read size, format, mode and EXIF metadata."""
    img = _open(source)
    try:
        try:
            rgb = to_rgb(img)  # applies EXIF orientation, so width/height are as displayed
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError) as e:
            raise ImageDecodeError(f"cannot convert {img.mode} image to RGB: {type(e).__name__}: {e}") from e
        extra = _exif_fields(img)
        return ImageInfo(
            width=rgb.width,
            height=rgb.height,
            format=img.format or "unknown",
            mode=img.mode,
            n_frames=int(getattr(img, "n_frames", 1) or 1),
            **extra,  # type: ignore[arg-type]
        )
    finally:
        img.close()


def to_rgb(img: Image.Image) -> Image.Image:
    """EXIF orientation applied; palette/CMYK/16-bit/LA/RGBA/grayscale converted to 8-bit RGB."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated GIF/WebP/TIFF: the first frame
    with contextlib.suppress(Exception):  # malformed EXIF: keep the stored orientation
        img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr8 = ((arr - lo) / (hi - lo or 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


def load_rgb(source: str | Path | bytes) -> Image.Image:
    """Decode to an 8-bit RGB PIL image, or raise ImageDecodeError with the reason."""
    return to_rgb(_open(source))


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """Shorter side to `size` (bilinear, antialiased), centre crop to size x size: uint8 (size, size, 3).

    This is the one geometric preprocessing step shared by training, evaluation, export and serving.
    """
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).copy()
