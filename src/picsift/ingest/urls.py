"""Downloading images listed by URL: timeout, retries with backoff, a size cap, a content-type check.

Downloaded files are saved inside the workspace (`files/urls/`), named by a hash of the URL, since
they have no path on the user's disk; the catalog's `source` keeps the URL.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from picsift.data.formats import IMAGE_EXTENSIONS, suffix_for_mime
from picsift.filenames import inside, safe_filename

# Some servers send images as generic binary; those bytes are then judged by decoding them.
_ACCEPTED_TYPES = ("application/octet-stream", "binary/octet-stream")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Download:
    """One URL's download: the saved file and its bytes, or why it failed."""

    url: str
    path: str | None = None  # the saved file, when the download succeeded
    data: bytes | None = None
    error: str | None = None  # why it failed, for the catalog and the import summary


class _Refused(Exception):
    """A failure that retrying cannot fix (4xx, wrong content type, too large)."""


def is_url(text: str) -> bool:
    """Whether `text` is an http(s) URL with a host (`http://[::1` is not: its IPv6 host is unclosed)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def url_file_name(url: str, content_type: str | None) -> str:
    """A file name for the URL's download: a hash of the URL, with the content type's extension (else the
    URL's image extension, else ".bin")."""
    ext = suffix_for_mime(content_type)
    if ext is None:
        suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
        ext = suffix if suffix in IMAGE_EXTENSIONS else ".bin"
    return safe_filename(hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ext)


def _fetch_once(url: str, timeout_s: float, max_bytes: int) -> tuple[bytes, str | None]:
    request = urllib.request.Request(url, headers={"User-Agent": "picsift (image import)"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 429 or e.code >= 500:
            raise  # worth retrying
        raise _Refused(f"HTTP {e.code} {e.reason}") from e
    with response:
        raw_type = response.headers.get("Content-Type")
        content_type = raw_type.split(";")[0].strip().lower() if raw_type else None
        if content_type and not content_type.startswith("image/") and content_type not in _ACCEPTED_TYPES:
            raise _Refused(f"not an image: the server sent Content-Type {content_type}")
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise _Refused(f"too large: {int(length)} bytes, over the {max_bytes}-byte limit")
        chunks, total = [], 0
        while chunk := response.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise _Refused(f"too large: more than the {max_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks), content_type


def download(url: str, dest_dir: Path, *, timeout_s: float, retries: int, max_bytes: int) -> Download:
    """Fetch `url` into `dest_dir`. Never raises for network trouble: the reason is in `.error`."""
    error = "not attempted"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
        try:
            data, content_type = _fetch_once(url, timeout_s, max_bytes)
        except _Refused as e:
            return Download(url, error=str(e))
        except urllib.error.HTTPError as e:
            error = f"HTTP {e.code} {e.reason}"
        except TimeoutError:
            error = f"timed out after {timeout_s:g} s"
        except urllib.error.URLError as e:
            reason = e.reason
            is_timeout = isinstance(reason, (TimeoutError, socket.timeout))
            error = f"timed out after {timeout_s:g} s" if is_timeout else f"cannot connect: {reason}"
        except (OSError, http.client.HTTPException, ValueError) as e:
            error = f"download failed: {type(e).__name__}: {e}"
        else:
            dest_dir.mkdir(parents=True, exist_ok=True)
            path = inside(dest_dir, url_file_name(url, content_type))
            tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return Download(url, path=str(path), data=data)
    tries = f" ({retries + 1} attempts)" if retries else ""
    return Download(url, error=error + tries)
