"""JPEG previews for the labelling app: thumbnails cached by content hash, larger views made on demand."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from PIL import Image

from picsift.atomic import atomic_path
from picsift.data.images import catalog_source, load_rgb
from picsift.errors import disk_error
from picsift.store import ImageRow

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    """The image encoded as JPEG at `quality` (PIL's JPEG quality, default 85)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def cached_thumbnail(cache_dir: Path, row: ImageRow, size: int) -> Path:
    """The JPEG thumbnail (longest side at most `size` px) of a catalog image, made once per content hash.

    Stored as `cache_dir/thumbs/SHA256-SIZE.jpg`, written to a temporary file first so concurrent requests
    never read half a file. The name comes from the hash alone (a catalog value that is not a SHA-256 digest is
    hashed itself), and anything but a regular file in its place (a link leading out of the workspace) is
    replaced, never followed. Raises ImageDecodeError or OSError when the image cannot be read, DiskError when
    the cache cannot be written (a full or read-only disk; no partial file is left).
    """
    key = row.sha256 if SHA256_HEX.fullmatch(row.sha256 or "") else hashlib.sha256(str(row.sha256).encode()).hexdigest()
    path = cache_dir / "thumbs" / f"{key}-{int(size)}.jpg"
    if path.is_symlink() or not path.is_file():
        img = load_rgb(catalog_source(row.path, key, cache_dir))
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


def preview(source: str | Path | bytes, size: int, quality: int = 85) -> bytes:
    """JPEG bytes of an image file (or URL, or its bytes) scaled to fit `size` x `size` px. ImageDecodeError or
    OSError when unreadable."""
    img = load_rgb(source)
    img.thumbnail((size, size))
    return jpeg_bytes(img, quality)
