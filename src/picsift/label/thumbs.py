"""JPEG previews for the labelling app: thumbnails cached by content hash, larger views made on demand."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from PIL import Image

from picsift.data.images import catalog_source, load_rgb
from picsift.store import ImageRow


def jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    """The image encoded as JPEG at `quality` (PIL's JPEG quality, default 85)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def cached_thumbnail(cache_dir: Path, row: ImageRow, size: int) -> Path:
    """The JPEG thumbnail (longest side at most `size` px) of a catalog image, made once per content hash.

    Stored as `cache_dir/thumbs/SHA256-SIZE.jpg`, written to a temporary file first so concurrent requests
    never read half a file. Raises ImageDecodeError or OSError when the image cannot be read.
    """
    path = cache_dir / "thumbs" / f"{row.sha256}-{size}.jpg"
    if not path.exists():
        img = load_rgb(catalog_source(row.path, row.sha256, cache_dir))
        img.thumbnail((size, size))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(jpeg_bytes(img))
        tmp.replace(path)
    return path


def preview(source: str | Path | bytes, size: int, quality: int = 85) -> bytes:
    """JPEG bytes of an image file (or URL, or its bytes) scaled to fit `size` x `size` px. ImageDecodeError or
    OSError when unreadable."""
    img = load_rgb(source)
    img.thumbnail((size, size))
    return jpeg_bytes(img, quality)
