"""Object storage and URLs as places images live: the one I/O layer over fsspec.

Any `scheme://` location that fsspec knows is read and written here, so every command takes one:
s3:// (s3fs, `pip install 'picsift[cloud]'`), gs:// (gcsfs), az:// and abfs:// (adlfs), http(s)://,
file:// and memory:// (tests). Local paths never go through fsspec.

- `is_remote(path)`: whether a path is such a URL;
- `read_bytes(url)`, `iter_remote_images(url)`: one object's bytes, the images under a prefix;
- `RemoteTree(url)`: a prefix listed once, then walked by the rules of the local folder walk
  (`picsift.data.walk`: formats from `picsift.data.formats`, hidden entries skipped and reported);
- `image_source(path, sha256, cache_dir)`: what the decoder reads for a catalog image: a local path as it is,
  a remote object's bytes from the content-addressed cache `cache_dir/objects/` (filled on first read);
- `missing_objects(urls)`: which catalog objects are gone, one listing per folder;
- `publish_folder(local, url)` / `fetch_folder(url, dest)`: a folder uploaded with its manifest written last
  (object stores have no rename: a reader that requires the manifest never sees half an upload).

Credentials and endpoints come from each backend's standard configuration: for S3, the AWS variables
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL for MinIO and other S3-compatible stores) and ~/.aws/. Options for the fsspec file system
(`{"anon": true}` for a public bucket, `endpoint_url`, ...) come from $PICSIFT_STORAGE_OPTIONS (a JSON
object) or `set_options`. Every failure is a StorageError naming the URL.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from picsift.data.walk import HIDDEN, file_skip_reason, is_hidden
from picsift.errors import StorageError

__all__ = [
    "MANIFEST_FILE",
    "OBJECT_SCHEMES",
    "RemoteTree",
    "cached_bytes",
    "fetch_folder",
    "image_source",
    "is_empty",
    "is_remote",
    "iter_remote_images",
    "join",
    "kind_of",
    "missing_objects",
    "name_of",
    "parse_options",
    "protocol_of",
    "publish_folder",
    "read_bytes",
    "set_options",
]

MANIFEST_FILE = "picsift-manifest.json"  # written last by publish_folder; fetch_folder requires it
OPTIONS_ENV = "PICSIFT_STORAGE_OPTIONS"
# Object stores whose URLs a URL list or manifest may name (any fsspec scheme is read where a URL is given).
OBJECT_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCLOUD_", "AZURE_", OPTIONS_ENV)
MISSING_REMOTE = "missing in object storage"
_FEW = 3  # objects of one folder checked one request each; more are checked by listing the folder
_OPTIONS: dict[str, Any] = {}
_FILESYSTEMS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
T = TypeVar("T")


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a URL (`scheme://...`, the scheme two characters or more) rather than a local path."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def protocol_of(url: str) -> str:
    """The URL's scheme in lower case: "s3" for "s3://bucket/key"."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def name_of(url: str) -> str:
    """The last part of a URL's path: "a.png" for "s3://b/x/a.png", "x" for "s3://b/x/"."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def join(url: str, *parts: str) -> str:
    """`url` with `parts` appended, separated by single slashes: join("s3://b/x/", "a", "1.png")."""
    out = url.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def set_options(options: dict[str, Any]) -> None:
    """fsspec file-system options for this process (`--storage-option`), over those of $PICSIFT_STORAGE_OPTIONS."""
    with _LOCK:
        _OPTIONS.clear()
        _OPTIONS.update(options)
        _FILESYSTEMS.clear()


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """`KEY=VALUE` texts -> {key: value}, each value read as JSON when it is JSON (`anon=true` -> True), else
    kept as text. StorageError for a text without `=`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StorageError(f"--storage-option expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _options() -> dict[str, Any]:
    raw = os.environ.get(OPTIONS_ENV, "").strip()
    env: dict[str, Any] = {}
    if raw:
        try:
            env = json.loads(raw)
        except ValueError as e:
            raise StorageError(f"${OPTIONS_ENV} is not JSON: {e}") from e
        if not isinstance(env, dict):
            raise StorageError(f'${OPTIONS_ENV} must be a JSON object such as {{"anon": true}}')
    return {**env, **_OPTIONS}


def _filesystem(url: str) -> tuple[Any, str]:
    """(the fsspec file system for `url`, the path within it). One instance per scheme, options and storage
    environment, so a changed AWS_ENDPOINT_URL or credential is never served by a stale client."""
    import fsspec

    protocol = protocol_of(url)
    options = _options()
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES))
    key = (protocol, json.dumps([options, env], sort_keys=True, default=str))
    with _LOCK:
        fs = _FILESYSTEMS.get(key)
        if fs is None:
            try:
                fs = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
            except Exception as e:  # the backend's own errors: ImportError, ValueError, TypeError, ...
                raise _error(url, e) from e
            _FILESYSTEMS[key] = fs
    return fs, fs._strip_protocol(url)


def _error(url: str, e: BaseException) -> StorageError:
    """One backend failure -> a StorageError naming the URL and what to do."""
    name, text = type(e).__name__, str(e)
    scheme = protocol_of(url)
    if isinstance(e, ImportError):
        return StorageError(f"{url}: {scheme}:// needs a package that is not installed ({text}); see docs/collect.md")
    if isinstance(e, ValueError) and "protocol not known" in text.lower():
        return StorageError(f"{url}: unknown storage scheme {scheme}://")
    if name == "NoCredentialsError" or ("credentials" in text.lower() and "unable to locate" in text.lower()):
        return StorageError(
            f"{url}: no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE "
            f"(~/.aws/credentials), or for a public bucket {OPTIONS_ENV}='{{\"anon\": true}}'"
        )
    if isinstance(e, FileNotFoundError):
        what = "no such bucket" if "bucket" in text.lower() else "no such object or prefix"
        return StorageError(f"{url}: {what}")
    if isinstance(e, PermissionError):
        return StorageError(f"{url}: access denied (check the credentials and the bucket's permissions): {text}")
    if "ConnectionError" in name or "Connector" in name or isinstance(e, (ConnectionError, TimeoutError)):
        return StorageError(f"{url}: cannot reach the storage endpoint: {text}")
    return StorageError(f"{url}: {name}: {text}" if text else f"{url}: {name}")


def _call(url: str, work: Callable[[], T]) -> T:
    """Run a backend call, turning any failure into a StorageError naming `url`."""
    try:
        return work()
    except StorageError:
        raise
    except Exception as e:  # fsspec backends raise OSError, botocore and aiohttp errors, ValueError, ...
        raise _error(url, e) from e


def read_bytes(url: str) -> bytes:
    """All bytes of the object (or file) at `url`. Raises StorageError naming the URL (missing, denied,
    unreachable)."""
    fs, path = _filesystem(url)
    return _call(url, lambda: bytes(fs.cat_file(path)))


def kind_of(url: str) -> str:
    """ "file" when `url` names an object (any http(s) URL does), else "folder" (a prefix, which may be empty:
    listing it says). StorageError when it cannot be checked (a missing bucket, no credentials, unreachable)."""
    if url.endswith("/"):
        return "folder"
    if protocol_of(url) in ("http", "https"):
        return "file"
    fs, path = _filesystem(url)
    fs.invalidate_cache(path)
    info = _call(url, lambda: _info_or_none(fs, path))
    return "file" if info is not None and info.get("type") != "directory" else "folder"


def _info_or_none(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        return dict(fs.info(path))
    except FileNotFoundError:
        return None


def is_empty(url: str) -> bool:
    """Whether nothing is stored at or under `url` (a missing bucket is an error, not empty)."""
    fs, path = _filesystem(url)
    try:
        return not fs.find(path, withdirs=False) and not fs.isfile(path)
    except FileNotFoundError as e:
        if "bucket" in str(e).lower():
            raise _error(url, e) from e
        return True
    except Exception as e:
        raise _error(url, e) from e


class RemoteTree:
    """A prefix listed once (one recursive listing), then walked folder by folder by the local walk's rules.

    URLs are `url` (with a trailing slash) plus each object's key below it, so they keep the user's spelling.
    Empty "folder marker" objects (keys ending in /) are ignored. Raises StorageError when listing fails.
    """

    def __init__(self, url: str) -> None:
        self.root = url.rstrip("/") + "/"
        fs, base = _filesystem(self.root)
        fs.invalidate_cache(base)  # a listing is always fresh, even in a long-running process
        listing = _call(self.root, lambda: fs.find(base, withdirs=False, detail=True))
        if not listing:
            raise StorageError(f"{self.root}: no such object or prefix (nothing stored under it)")
        base = base.rstrip("/")
        self._files: dict[str, list[str]] = {"": []}
        self._dirs: dict[str, set[str]] = {"": set()}
        for name, info in listing.items():
            if info.get("type") == "directory" or name.endswith("/") or not name.startswith(base + "/"):
                continue
            parts = name[len(base) + 1 :].split("/")
            folder = ""
            for part in parts[:-1]:
                child = f"{folder}/{part}" if folder else part
                self._dirs.setdefault(folder, set()).add(part)
                self._dirs.setdefault(child, set())
                self._files.setdefault(child, [])
                folder = child
            self._files[folder].append(parts[-1])

    def _rel(self, folder: str | None) -> str:
        return "" if folder is None else folder[len(self.root) :].strip("/")

    def _url(self, rel: str, name: str = "") -> str:
        return self.root + "/".join(p for p in (rel, name) if p) + ("/" if not name else "")

    def _all_files(self, rel: str) -> list[str]:
        """Every object under folder `rel`, in walk order (as URLs)."""
        out = [self._url(rel, n) for n in sorted(self._files.get(rel, []))]
        for d in sorted(self._dirs.get(rel, ())):
            out += self._all_files(f"{rel}/{d}" if rel else d)
        return out

    def split(self, folder: str | None = None) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """One level of `folder` (the root by default): (sub-folder URLs to walk, image URLs, skipped (URL,
        reason)), each in name order; everything under a hidden sub-folder is skipped as hidden."""
        rel = self._rel(folder)
        images: list[str] = []
        skipped: list[tuple[str, str]] = []
        for name in sorted(self._files.get(rel, [])):
            why = file_skip_reason(name)
            if why is None:
                images.append(self._url(rel, name))
            else:
                skipped.append((self._url(rel, name), why))
        subfolders: list[str] = []
        for d in sorted(self._dirs.get(rel, ())):
            child = f"{rel}/{d}" if rel else d
            if is_hidden(d):
                skipped += [(u, HIDDEN) for u in self._all_files(child)]
            else:
                subfolders.append(self._url(child))
        return subfolders, images, skipped

    def walk(self, folder: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
        """(every image URL under `folder`, recursively, skipped (URL, reason)): a folder's files, then its
        sub-folders, depth first in name order, as `picsift.data.walk.Walker.walk`."""
        images: list[str] = []
        skipped: list[tuple[str, str]] = []
        pending = [folder if folder is not None else self.root]
        while pending:
            subfolders, here, skips = self.split(pending.pop())
            images += here
            skipped += skips
            pending += reversed(subfolders)
        return images, skipped

    @staticmethod
    def name(folder: str) -> str:
        """A folder URL's own name (its class, in a folder-per-class tree)."""
        return name_of(folder)


def iter_remote_images(url: str, on_skip: Callable[[str, str], None] | None = None) -> Iterator[str]:
    """The image URLs at `url`: the object itself when it is one (taken whatever its name), else every image
    under the prefix, recursively, by the local folder walk's rules. `on_skip(url, reason)` hears about each
    object that is not an image (hidden, another suffix). StorageError: missing, denied, unreachable; a prefix
    without an image is a StorageError too (a typo never passes as "0 images")."""
    if kind_of(url) == "file":
        yield url
        return
    images, skipped = RemoteTree(url).walk()
    for where, why in skipped:
        if on_skip is not None:
            on_skip(where, why)
    if not images:
        raise StorageError(f"{url}: holds no image files ({len(skipped)} other objects)")
    yield from images


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _blob_path(cache_dir: Path, sha256: str) -> Path:
    """Where the object with this digest is cached; a value that is not a SHA-256 hex digest (an edited catalog
    row such as "../../x") is hashed itself, so the path never leaves `cache_dir/objects`."""
    key = sha256 if _SHA256_HEX.fullmatch(sha256) else hashlib.sha256(sha256.encode()).hexdigest()
    return cache_dir / "objects" / key[:2] / key


def cached_bytes(url: str, sha256: str, cache_dir: Path) -> bytes:
    """The bytes of `url`, read once: from `cache_dir/objects/<sha256[:2]>/<sha256>` when that holds them, else
    downloaded and stored there under the hash of what was downloaded. StorageError as `read_bytes`."""
    blob = _blob_path(cache_dir, sha256)
    try:
        return blob.read_bytes()
    except OSError:
        pass
    data = read_bytes(url)
    actual = hashlib.sha256(data).hexdigest()
    target = _blob_path(cache_dir, actual)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{actual}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError:
        pass  # a full or read-only cache only costs a download next time
    return data


def image_source(path: str, sha256: str | None = None, cache_dir: Path | None = None) -> str | bytes:
    """What `picsift.data.images.load_rgb` reads for a catalog image: a local path as it is; for a URL its
    bytes, through the content-addressed cache when `sha256` and `cache_dir` are given (so training,
    thumbnails and features download each object once). StorageError when a URL cannot be read."""
    if not is_remote(path):
        return path
    if sha256 and cache_dir is not None:
        return cached_bytes(path, sha256, cache_dir)
    return read_bytes(path)


def missing_objects(urls: Iterable[str]) -> dict[str, str]:
    """{url: why} for the URLs whose object is gone ("missing in object storage") or cannot be checked
    ("cannot be read: ..."); present objects are left out. One listing per folder (not one request per
    object); http(s) URLs, and a folder's objects when only a few are asked about, are checked one by one."""
    by_parent: dict[str, list[str]] = {}
    for url in urls:
        by_parent.setdefault(url.rsplit("/", 1)[0], []).append(url)
    out: dict[str, str] = {}
    for parent, members in by_parent.items():
        fs, path = _filesystem(parent + "/")
        try:
            fs.invalidate_cache(path)  # listings cached by the file system may predate a deletion
            if protocol_of(parent) in ("http", "https") or len(members) <= _FEW:  # a request each beats a listing
                present = {u for u in members if fs.exists(fs._strip_protocol(u))}
            else:
                names = {n.rstrip("/") for n in fs.ls(path, detail=False)}
                present = {u for u in members if fs._strip_protocol(u).rstrip("/") in names}
        except FileNotFoundError:
            present = set()
        except Exception as e:
            why = f"cannot be read: {_error(parent + '/', e)}"
            out.update({u: why for u in members})
            continue
        out.update({u: MISSING_REMOTE for u in members if u not in present})
    return out


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def publish_folder(local: Path, url: str) -> None:
    """Upload the files under `local` to the prefix `url`, then write `MANIFEST_FILE` ({"files": {relative
    path: {"sha256", "size"}}}) last. An earlier manifest there is deleted first and objects it listed that
    the new one does not are deleted after, so a reader that requires the manifest (`fetch_folder`) sees the
    old folder, none, or the new one: never a mix. StorageError when anything cannot be written."""
    files = sorted(p for p in Path(local).rglob("*") if p.is_file())
    manifest = {
        "files": {p.relative_to(local).as_posix(): {"sha256": _sha256_of(p), "size": p.stat().st_size} for p in files}
    }
    fs, base = _filesystem(url)
    marker = join(base, MANIFEST_FILE)
    old = _manifest_doc(_call(url, lambda: _cat_or_none(fs, marker)))
    if old is not None:
        _call(url, lambda: fs.rm_file(marker))
    for p in files:
        rel = p.relative_to(local).as_posix()
        _call(join(url, rel), functools.partial(fs.put_file, str(p), join(base, rel)))
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    _call(join(url, MANIFEST_FILE), lambda: fs.pipe_file(marker, data))
    stale = set((old or {}).get("files", {})) - set(manifest["files"])
    for rel in sorted(stale):
        with contextlib.suppress(Exception):  # a leftover object no manifest lists is harmless
            fs.rm_file(join(base, rel))


def fetch_folder(url: str, dest: Path) -> Path:
    """Download the folder `publish_folder` wrote at `url` into `dest` and return `dest`; a `dest` holding the
    same manifest already (an earlier download of the same upload) is returned as it is.

    Every file is checked against the manifest's sha256; the files are written to a temporary folder beside
    `dest` that then takes its place. Raises StorageError naming the URL: no manifest (not a published folder,
    or an upload still under way or failed), a file missing or changed (a new upload began: try again), or the
    usual storage failures."""
    fs, base = _filesystem(url)
    marker = join(base, MANIFEST_FILE)
    raw = _call(url, lambda: _cat_or_none(fs, marker))
    manifest = _manifest_doc(raw)
    if raw is None or manifest is None:
        raise StorageError(
            f"{url}: no complete upload here ({MANIFEST_FILE} missing: not made by picsift, or an upload is still "
            "under way or failed)"
        )
    local_marker = dest / MANIFEST_FILE
    if local_marker.is_file() and local_marker.read_bytes() == raw:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, meta in manifest["files"].items():
            parts = rel.split("/")
            if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
                raise StorageError(f"{url}: {MANIFEST_FILE} lists an unsafe path {rel!r}")
            data = read_bytes(join(url, rel))
            if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
                raise StorageError(f"{join(url, rel)}: changed while downloading (a new upload?): try again")
            target = tmp.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (tmp / MANIFEST_FILE).write_bytes(raw)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _cat_or_none(fs: Any, path: str) -> bytes | None:
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


def _manifest_doc(raw: bytes | None) -> dict[str, Any] | None:
    """A manifest's JSON, or None when it is absent or not one."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else None
