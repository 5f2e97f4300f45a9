"""JPEG previews for the labelling app: thumbnails cached by content hash, larger views made on demand."""

from __future__ import annotations

import hashlib
import io
import re
import threading
from pathlib import Path

from PIL import Image

from picsift.data.images import catalog_source, load_rgb
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
    replaced, never followed. Raises ImageDecodeError or OSError when the image cannot be read.
    """
    key = row.sha256 if SHA256_HEX.fullmatch(row.sha256 or "") else hashlib.sha256(str(row.sha256).encode()).hexdigest()
    path = cache_dir / "thumbs" / f"{key}-{int(size)}.jpg"
    if path.is_symlink() or not path.is_file():
        img = load_rgb(catalog_source(row.path, key, cache_dir))
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
