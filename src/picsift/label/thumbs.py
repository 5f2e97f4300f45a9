"""JPEG previews for the labelling app: thumbnails cached by content hash, larger views made on demand."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from picsift.atomic import atomic_path
from picsift.data.images import load_rgb
from picsift.errors import disk_error
from picsift.store import ImageRow


def jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    """The image encoded as JPEG at `quality` (PIL's JPEG quality, default 85)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def cached_thumbnail(cache_dir: Path, row: ImageRow, size: int) -> Path:
    """The JPEG thumbnail (longest side at most `size` px) of a catalog image, made once per content hash.

    Stored as `cache_dir/thumbs/SHA256-SIZE.jpg`, written to a temporary file first so concurrent requests
    never read half a file. Raises ImageDecodeError or OSError when the image cannot be read, DiskError when
    the cache cannot be written (a full or read-only disk; no partial file is left).
    """
    path = cache_dir / "thumbs" / f"{row.sha256}-{size}.jpg"
    if not path.exists():
        img = load_rgb(row.path)
        img.thumbnail((size, size))
        data = jpeg_bytes(img)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            full = disk_error(e, path.parent)
            if full is None:
                raise
            raise full from e
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return path


def preview(source: str | Path, size: int, quality: int = 85) -> bytes:
    """JPEG bytes of an image file scaled to fit `size` x `size` px. ImageDecodeError or OSError when unreadable."""
    img = load_rgb(source)
    img.thumbnail((size, size))
    return jpeg_bytes(img, quality)
