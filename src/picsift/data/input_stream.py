"""Where batch prediction's inputs come from, enumerated lazily and opened one at a time.

Two functions are the whole interface, so a new kind of location is added here and nowhere else:

- `iter_inputs(sources, files_from)`: the input paths, one at a time, in a fixed order (the same order
  on every run over unchanged inputs, which is what makes resuming possible);
- `open_input(path)`: what the image decoder reads for one path (a local path, or the file's bytes).

Sources are object URLs (`s3://bucket/prefix/`, through `picsift.data.storage`), local files, folders and glob patterns, read as `picsift.data.inputs.collect_inputs` reads them
(folders walked by `picsift.data.walk`, one folder at a time; a folder or pattern with no image is a
DatasetError), and text files listing one path a line (`files_from`; each line a file, taken literally).
Memory: one folder's listing at a time; a glob pattern's matches are sorted, so they are listed at once.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from picsift.data.formats import describe
from picsift.data.storage import is_remote, iter_remote_images, read_bytes
from picsift.data.walk import SkippedFile, Walker, walk_images
from picsift.errors import DatasetError, ImageDecodeError, StorageError

SkipHandler = Callable[[SkippedFile], None]


def _ignore(_: SkippedFile) -> None:
    return None


def iter_inputs(
    sources: Sequence[str], files_from: Sequence[str | Path] = (), on_skip: SkipHandler | None = None
) -> Iterator[str]:
    """The input paths of `sources` (files, folders, glob patterns), then of each list file in `files_from`.

    `on_skip` is called with each entry a folder or pattern holds that is not an image (hidden files, other
    suffixes, broken links), with why. A file named explicitly, or on a line of a list file, is always
    yielded (the decoder reports a bad one). Raises DatasetError: a folder or pattern that yields no image (so
    a typo never passes as "0 predictions"), a list file that cannot be read (with its line number).
    """
    skip = on_skip or _ignore
    for item in sources:
        yield from _source_paths(item, skip)
    for list_file in files_from:
        yield from _listed_paths(Path(list_file))


def open_input(path: str) -> str | bytes:
    """What `picsift.data.images.load_rgb` reads for `path`: a local file's path, or an object URL's bytes.

    Raises ImageDecodeError "no such file" or "not a file" (a folder, a socket), or "cannot be read: ..." for an
    object that is missing or cannot be fetched: the errors batch prediction records in the file's row.
    """
    if is_remote(path):
        try:
            return read_bytes(path)
        except StorageError as e:
            raise ImageDecodeError(f"cannot be read: {e}") from e
    p = Path(path)
    if not p.is_file():
        raise ImageDecodeError("no such file" if not p.exists() else "not a file")
    return path


def _folder_paths(folder: Path, skip: SkipHandler) -> Iterator[str]:
    for here in Walker(folder).iter_walk():
        for s in here.skipped:
            skip(s)
        for f in here.images:
            yield str(f)


def _source_paths(item: str, skip: SkipHandler) -> Iterator[str]:
    if is_remote(item):  # an object, or a prefix walked by the folder rules (listed in one call)
        yield from iter_remote_images(item, lambda url, why: skip(SkippedFile(url, why)))
        return
    p = Path(item)
    if p.is_dir():
        found = 0
        for path in _folder_paths(p, skip):
            found += 1
            yield path
        if not found:
            raise DatasetError(f"folder {item!r} holds no image files (looked for {describe()}, recursively)")
    elif p.exists() or not any(ch in item for ch in "*?["):
        yield item  # taken literally, even with glob characters in its name; a missing file is reported per file
    else:
        yield from _pattern_paths(item, skip)


def _pattern_paths(pattern: str, skip: SkipHandler) -> Iterator[str]:
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise DatasetError(f"pattern {pattern!r} matched no files")
    seen: set[str] = set()  # `**` matches a folder and the files in it
    for m in matches:
        mp = Path(m)
        if mp.is_dir():
            paths: Iterator[str] = _folder_paths(mp, skip)
        else:
            found = walk_images(mp)
            for s in found.skipped:
                skip(s)
            paths = iter([str(f) for f in found.images])
        for path in paths:
            if path not in seen:
                seen.add(path)
                yield path
    if not seen:
        raise DatasetError(f"pattern {pattern!r} matched no image files")


def _listed_paths(list_file: Path) -> Iterator[str]:
    """The lines of a list file (UTF-8, one path a line, LF or CRLF; blank lines ignored), read as needed."""
    try:
        with list_file.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    path = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise DatasetError(f"{list_file}, line {number}: not UTF-8 text ({e.reason})") from e
                if path.strip():
                    yield path
    except OSError as e:
        raise DatasetError(f"cannot read the list of paths {list_file}: {e.strerror or e}") from e
