"""Discovery: turn an import source into entries (a file or URL, its label and split) plus the files
deliberately skipped, each with a reason. Nothing is read or decoded here beyond directory listings
and the manifest itself, and a malformed manifest fails before anything is written. Which files in a
folder are images, and which are skipped and why (hidden, not an image, links), is decided by the one
folder walk, `picsift.data.walk`.

Layouts of a folder, decided from its top level:
- `root/{train,val,test}/<class>/**` (a `train` folder is present): splits from the source;
- `root/<class>/**` (any sub-folders): folder-per-class, files directly in `root` are unlabeled;
- a folder without sub-folders (or any folder with `--label`): every image, unlabeled or `--label`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from picsift.data.formats import describe, is_image_name, unavailable_reason
from picsift.data.storage import (
    OBJECT_SCHEMES,
    RemoteTree,
    is_remote,
    kind_of,
    missing_objects,
    name_of,
    protocol_of,
    read_bytes,
)
from picsift.data.walk import Walker, WalkResult, hidden_files, is_hidden
from picsift.errors import DatasetError, LabelError
from picsift.filenames import safe_filename
from picsift.ingest.archives import MAX_EXPANSION, extract, is_archive
from picsift.ingest.delimited import column_count_error, delimiter_name, read_rows, read_utf8_text, sniff_delimiter
from picsift.ingest.splits import SPLITS, normalize_split
from picsift.ingest.urls import is_url
from picsift.labels_text import normalize_optional_label

MANIFEST_SUFFIXES = (".csv", ".tsv")
URL_LIST_SUFFIXES = (".txt", ".urls", ".list")
_MAX_LISTED_ERRORS = 10


@dataclass(frozen=True)
class Entry:
    """One file (or URL) to record. `path` is absolute; for a URL it is the URL itself."""

    path: str
    source: str
    source_kind: str  # folder | split-folders | flat | csv | urls | archive | file
    label: str | None = None
    split: str | None = None
    split_origin: str | None = None  # "source" (folders, manifest) or "manual" (--split)
    url: str | None = None
    where: str | None = None  # "manifest.csv line 7", for messages


@dataclass
class Discovery:
    """What a source holds: its kind, the entries to import and the files skipped (with reasons)."""

    kind: str
    source: str
    entries: list[Entry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def label_from_name(name: str) -> str:
    """A folder name as a label; bytes that are not UTF-8 become visible escapes like `\\xe9`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace").strip()


def _skips(found: WalkResult) -> list[tuple[str, str]]:
    return [(os.fspath(s.path), s.reason) for s in found.skipped]


class _Tree(Protocol):
    """A folder tree walked by the rules of `picsift.data.walk`, with paths as text: a local folder
    (`_LocalTree`) or a prefix in object storage (`picsift.data.storage.RemoteTree`)."""

    def split(self, folder: str | None = None) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """One level: (sub-folders, images, skipped (path, reason))."""
        ...

    def walk(self, folder: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
        """Everything under a folder: (images, skipped (path, reason))."""
        ...

    def name(self, folder: str) -> str:
        """A folder's own name."""
        ...


class _LocalTree:
    """`picsift.data.walk.Walker` over a local folder, its paths as text."""

    def __init__(self, root: Path) -> None:
        self.walker = Walker(root)

    def split(self, folder: str | None = None) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """One level of `folder` (the root by default)."""
        dirs, found = self.walker.split(Path(folder) if folder is not None else None)
        return [os.fspath(d) for d in dirs], [os.fspath(f) for f in found.images], _skips(found)

    def walk(self, folder: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
        """Every image under `folder`, recursively, and the entries skipped."""
        found = self.walker.walk(Path(folder) if folder is not None else None)
        return [os.fspath(f) for f in found.images], _skips(found)

    def name(self, folder: str) -> str:
        """The folder's own name."""
        return Path(folder).name


def _class_folder(
    tree: _Tree, folder: str, disc: Discovery, source: str, split: str | None, split_origin: str | None
) -> None:
    """Every image under a class folder (recursively) is that class."""
    label = label_from_name(tree.name(folder)) or None
    images, skipped = tree.walk(folder)
    disc.skipped += skipped
    disc.entries += [Entry(f, source, disc.kind, label, split, split_origin) for f in images]


def _class_folders(
    tree: _Tree,
    level: tuple[list[str], list[str], list[tuple[str, str]]],
    disc: Discovery,
    source: str,
    split: str | None,
    split_origin: str | None,
) -> None:
    """`root/<class>/**` from `tree.split(root)`: images under a class folder are that class; loose
    images are unlabeled."""
    dirs, loose, skipped = level
    disc.skipped += skipped
    disc.entries += [Entry(f, source, disc.kind, None, split, split_origin) for f in loose]
    for d in dirs:
        _class_folder(tree, d, disc, source, split, split_origin)


def discover_folder(
    root: Path,
    *,
    label: str | None = None,
    split: str | None = None,
    source: str | None = None,
    kind: str | None = None,
) -> Discovery:
    """The images under a folder: with `label`, all of that class; else by split folders, class folders or
    flat. DatasetError when the folder cannot be listed."""
    root = Path(os.path.abspath(root))
    source = source if source is not None else os.fsdecode(root)
    try:
        os.listdir(root)
    except OSError as e:
        raise DatasetError(f"cannot list folder {root}: {e.strerror or e}") from e
    return _discover_tree(_LocalTree(root), source, label=label, split=split, kind=kind)


def discover_remote_folder(url: str, *, label: str | None = None, split: str | None = None) -> Discovery:
    """The images under a prefix in object storage (`s3://bucket/photos/`), by the same layouts and walk rules
    as a local folder; their paths are their URLs. StorageError when the prefix cannot be listed."""
    tree = RemoteTree(url)
    return _discover_tree(tree, tree.root, label=label, split=split, kind=None)


def _discover_tree(tree: _Tree, source: str, *, label: str | None, split: str | None, kind: str | None) -> Discovery:
    """The layout rules of the module docstring over a local or remote tree."""
    forced_origin = "manual" if split else None
    if label is not None:
        disc = Discovery(kind or "flat", source)
        images, skipped = tree.walk()
        disc.skipped += skipped
        disc.entries += [Entry(f, source, disc.kind, label, split, forced_origin) for f in images]
        return disc
    dirs, top_images, top_skipped = tree.split()
    by_split = {d: normalize_split(tree.name(d)) for d in dirs}
    if "train" in by_split.values():
        disc = Discovery(kind or "split-folders", source)
        disc.skipped += top_skipped
        disc.skipped += [(f, "outside the train/val/test folders") for f in top_images]
        for d, canonical in by_split.items():
            if canonical is None:
                images, skipped = tree.walk(d)
                disc.skipped += skipped
                why = f"folder {tree.name(d)!r} is not a split (train, val or test)"
                disc.skipped += [(f, why) for f in images]
                continue
            _class_folders(tree, tree.split(d), disc, source, split or canonical, forced_origin or "source")
        return disc
    if dirs:
        disc = Discovery(kind or "folder", source)
        _class_folders(tree, (dirs, top_images, top_skipped), disc, source, split, forced_origin)
        return disc
    disc = Discovery(kind or "flat", source)
    disc.skipped += top_skipped
    disc.entries += [Entry(f, source, disc.kind, None, split, forced_origin) for f in top_images]
    return disc


def _raise_errors(errors: list[str]) -> None:
    """One DatasetError listing the first problems (each names its file and line) and how many more."""
    if not errors:
        return
    more = f"; and {len(errors) - _MAX_LISTED_ERRORS} more" if len(errors) > _MAX_LISTED_ERRORS else ""
    raise DatasetError("; ".join(errors[:_MAX_LISTED_ERRORS]) + more)


_PATH_COLUMNS = ("path", "file", "filename", "image", "url")
_LABEL_COLUMNS = ("label", "class", "category")
_HEADERLESS = ["path", "label", "split"]
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def resolve_listed_path(base: Path, raw: str) -> tuple[str, str | None]:
    """The absolute path a manifest line names, relative to `base`, and a hint when it does not exist.

    A path written on Windows (`imgs\\a\\0.png`) is read with `\\` as the separator when that is
    how it resolves, like the members of a zip archive. Returns (path, None) when the path exists,
    else (the path as written, resolved; a hint for the error message, or None).
    """
    full = os.path.abspath(os.path.join(base, os.path.expanduser(raw)))
    if os.path.lexists(full) or "\\" not in raw or os.sep == "\\":
        return full, None
    if not _WINDOWS_DRIVE.match(raw) and not raw.startswith("\\\\"):
        posix = os.path.abspath(os.path.join(base, raw.replace("\\", "/")))
        if os.path.lexists(posix):
            return posix, None
    return full, "backslash paths: written on Windows? Use paths relative to the manifest's folder"


@dataclass
class _ManifestColumns:
    """Where a manifest keeps its columns: from its header, or `path,label,split` in order without one."""

    path: int = 0
    label: int | None = 1
    split: int | None = 2
    header: list[str] | None = None

    def cell(self, cells: list[str], i: int | None) -> str:
        """Cell `i` of a row, or "" when the column is absent or the row shorter."""
        return cells[i] if i is not None and i < len(cells) else ""


def _read_header(cells: list[str], columns: _ManifestColumns) -> bool:
    """Take the column names from a header line; True when `cells` was one (and is not data)."""
    lowered = [c.lower() for c in cells]
    if not any(c in _PATH_COLUMNS for c in lowered):
        return False
    columns.path = next(i for i, c in enumerate(lowered) if c in _PATH_COLUMNS)
    columns.label = next((i for i, c in enumerate(lowered) if c in _LABEL_COLUMNS), None)
    columns.split = next((i for i, c in enumerate(lowered) if c == "split"), None)
    columns.header = cells
    return True


def remote_listed_path(base: str, raw: str) -> str:
    """The object URL a line of a manifest stored at `base` (its folder's URL) names: `raw` itself when it
    is a URL, else `raw` relative to `base` (`./` and `../` resolved; backslashes read as separators)."""
    if is_remote(raw):
        return raw
    scheme, _, rest = base.partition("://")
    joined = posixpath.normpath(posixpath.join("/" + rest, raw.replace("\\", "/")))
    return f"{scheme}://{joined.lstrip('/')}"


def _manifest_entry(
    cells: list[str], columns: _ManifestColumns, where: str, base: Path | str, source: str, label: str | None,
    split: str | None,
) -> tuple[str, Entry]:  # fmt: skip
    """One data line -> (key, Entry); raises DatasetError (its message is the line's error)."""
    raw_path = columns.cell(cells, columns.path)
    try:
        row_label = normalize_optional_label(columns.cell(cells, columns.label) or label)
    except LabelError as e:
        raise DatasetError(f"{where}: {e}") from e
    raw_split = columns.cell(cells, columns.split)
    row_split, origin = split, ("manual" if split else None)
    if raw_split and not split:
        row_split, origin = normalize_split(raw_split), "source"
        if row_split is None:
            raise DatasetError(f"{where}: unknown split {raw_split!r} (expected one of {', '.join(SPLITS)})")
    if not raw_path:
        raise DatasetError(f"{where}: empty path")
    if is_url(raw_path):
        return raw_path, Entry(raw_path, source, "csv", row_label, row_split, origin, raw_path, where)
    if protocol_of(raw_path) in OBJECT_SCHEMES or isinstance(base, str):  # checked at once: `_check_objects`
        url = remote_listed_path(base, raw_path) if isinstance(base, str) else raw_path
        return url, Entry(url, source, "csv", row_label, row_split, origin, None, where)
    full, hint = resolve_listed_path(base, raw_path)
    if os.path.isdir(full):
        raise DatasetError(f"{where}: {raw_path} is a folder, expected an image file")
    if not os.path.isfile(full):
        raise DatasetError(f"{where}: file not found: {raw_path} (relative to {base}{'; ' + hint if hint else ''})")
    return full, Entry(full, source, "csv", row_label, row_split, origin, None, where)


def _check_objects(disc: Discovery, errors: list[str]) -> None:
    """An error for each entry naming an object in object storage that is not there (one listing per folder)."""
    gone = missing_objects(e.path for e in disc.entries if e.url is None and is_remote(e.path))
    errors += [f"{e.where}: {gone[e.path]}: {e.path}" for e in disc.entries if e.path in gone]


def _manifest_place(manifest: Path | str) -> tuple[Path | str, str, str, Path | str]:
    """(the manifest, its source text, its name for messages, what its relative lines are relative to)."""
    if isinstance(manifest, str) and is_remote(manifest):
        return manifest, manifest, name_of(manifest), manifest.rsplit("/", 1)[0]
    path = Path(os.path.abspath(manifest))
    return path, os.fsdecode(path), path.name, path.parent


def discover_manifest(manifest: Path | str, *, label: str | None = None, split: str | None = None) -> Discovery:
    """A delimited file of `path,label[,split]` (header optional), paths relative to its folder.

    The manifest may itself be in object storage (a URL): its relative paths then name objects beside it.
    Any line may name an object by URL (`s3://bucket/a.jpg`) or an http(s) URL (downloaded at import).
    The delimiter (`, ; <tab> |`) is detected (see `picsift.ingest.delimited`); every data line must
    have as many columns as the header (or, without one, the first line), and each line is one row: a quoted
    field closes on its own line (no path, label or split holds a line break). Raises DatasetError listing each
    bad line as "labels.csv line 4: ..." (a file or object that is not there, too), or naming the line of a quote
    left open ("labels.csv line 3: unclosed quote: ..."), before anything is written.
    """
    manifest, source, name, base = _manifest_place(manifest)
    disc = Discovery("csv", source)
    text = read_utf8_text(manifest)
    delimiter = sniff_delimiter(text)
    errors: list[str] = []
    columns = _ManifestColumns()
    seen: dict[str, tuple[int, str | None, str | None]] = {}
    for row in read_rows(text, name, delimiter):
        line, cells = row.line, row.cells
        if columns.header is None:
            if _read_header(cells, columns):
                continue
            columns.header = _HEADERLESS[: len(cells)]
            if len(cells) > len(_HEADERLESS):
                errors.append(
                    f"{name} line {line}: expected at most {len(_HEADERLESS)} columns ({', '.join(_HEADERLESS)}) "
                    f"separated by {delimiter_name(delimiter)}, found {len(cells)}"
                )
                columns.header = cells
                continue
        if len(cells) != len(columns.header):
            errors.append(column_count_error(name, row, columns.header, delimiter))
            continue
        where = f"{name} line {line}"
        try:
            key, entry = _manifest_entry(cells, columns, where, base, source, label, split)
        except DatasetError as e:
            errors.append(str(e))
            continue
        if key in seen:
            first_line, first_label, first_split = seen[key]
            if (first_label, first_split) != (entry.label, entry.split):
                errors.append(
                    f"{where}: {columns.cell(cells, columns.path)} is listed again with a different label or "
                    f"split (first on line {first_line})"
                )
            else:
                disc.skipped.append((key, f"listed again on {where} (first on line {first_line})"))
            continue
        seen[key] = (line, entry.label, entry.split)
        disc.entries.append(entry)
    if not errors:
        _check_objects(disc, errors)
    _raise_errors(errors)
    return disc


def discover_url_list(url_list: Path | str, *, label: str | None = None, split: str | None = None) -> Discovery:
    """A text file (local, or itself a URL) with one URL per line (optionally `URL,label[,split]`, separated by
    commas, tabs or, without either, spaces; a field with a comma quoted as in CSV: `URL,"air, plane"`); `#`
    starts a comment line. http(s) URLs are downloaded at import; object URLs (`s3://...`) are read where they
    are and must exist. DatasetError naming the line for a line that is no URL, a quote left open, an object that
    is not there."""
    url_list, source, list_name, _ = _manifest_place(url_list)
    disc = Discovery("urls", source)
    errors: list[str] = []
    seen: dict[str, int] = {}
    for row in read_rows(read_utf8_text(url_list).replace("\t", ","), list_name, ","):
        line, parts = row.line, row.cells
        if len(parts) == 1:
            parts = parts[0].split()
        url = parts[0]
        if not is_url(url) and protocol_of(url) not in OBJECT_SCHEMES:
            errors.append(
                f"{list_name} line {line}: not an http(s) URL or an object-storage URL (s3://, gs://, az://): "
                f"{url[:80]!r}"
            )
            continue
        row_label = parts[1] if len(parts) > 1 and parts[1] else label
        row_split, origin = split, "manual" if split else None
        if len(parts) > 2 and parts[2] and not split:
            row_split, origin = normalize_split(parts[2]), "source"
            if row_split is None:
                errors.append(
                    f"{list_name} line {line}: unknown split {parts[2]!r} (expected one of {', '.join(SPLITS)})"
                )
                continue
        if url in seen:
            disc.skipped.append((url, f"listed again on line {line} (first on line {seen[url]})"))
            continue
        seen[url] = line
        where = f"{list_name} line {line}"
        if is_url(url):
            disc.entries.append(Entry(url, url, "url", row_label, row_split, origin, url, where))
        else:  # an object in object storage: read where it is, its URL is its path
            disc.entries.append(Entry(url, source, "urls", row_label, row_split, origin, None, where))
    if not errors:
        _check_objects(disc, errors)
    _raise_errors(errors)
    return disc


def _discover_archive(
    archive: Path, origin: str, shown: str, workspace_files: Path, label: str | None, split: str | None,
    max_expansion: float,
) -> Discovery:  # fmt: skip
    """Entries of a local archive file, extracted into the workspace and walked like a folder: `origin` is the
    source recorded for its images, `shown` names it in the skipped members ("shown!member")."""
    extracted = extract(archive, workspace_files / "archives", max_ratio=max_expansion)
    top, hidden = _archive_root(extracted.folder)
    disc = discover_folder(top, label=label, split=split, source=origin, kind="archive")
    disc.skipped += hidden + [(f"{shown}!{m}", why) for m, why in extracted.refused]
    return disc


def _archive_root(folder: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Descend through a single wrapping folder (`dataset.zip` -> `dataset/train/...`); the hidden
    and system files beside it (`__MACOSX/`) are returned as skipped."""
    skipped: list[tuple[str, str]] = []
    while True:
        names = sorted(os.listdir(folder))
        visible = [n for n in names if not is_hidden(n)]
        if len(visible) != 1 or not (folder / visible[0]).is_dir():
            return folder, skipped
        for name in names:
            if name != visible[0]:
                skipped += [(os.fspath(s.path), s.reason) for s in hidden_files(folder / name)]
        folder = folder / visible[0]


def _download_archive(url: str, into: Path) -> Path:
    """An archive in object storage copied into the workspace (`into/<hash of the URL>/<its name>`)."""
    data = read_bytes(url)
    folder = into / hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_filename(name_of(url), fallback="archive")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def discover_remote(
    url: str, *, workspace_files: Path, label: str | None, split: str | None, max_expansion: float
) -> Discovery:
    """Entries of a source in object storage: a prefix (walked like a folder), a manifest or URL list, an
    archive (downloaded into the workspace, then extracted like a local one) or one image. StorageError when
    it cannot be read (a missing bucket or prefix, no credentials, access denied, an unreachable endpoint)."""
    if url.startswith("file://"):  # a local path spelled as a URL
        return discover(Path(url[len("file://") :]), workspace_files=workspace_files, label=label, split=split,
                        max_expansion=max_expansion)  # fmt: skip
    if kind_of(url) == "folder":
        return discover_remote_folder(url, label=label, split=split)
    name = name_of(url)
    lowered = name.lower()
    if is_archive(Path(name)):
        local = _download_archive(url, workspace_files / "downloads")
        return _discover_archive(local, url, url, workspace_files, label, split, max_expansion)
    if lowered.endswith(MANIFEST_SUFFIXES):
        return discover_manifest(url, label=label, split=split)
    if lowered.endswith(URL_LIST_SUFFIXES):
        return discover_url_list(url, label=label, split=split)
    origin = "manual" if split else None
    if is_url(url):  # one http(s) URL: downloaded into the workspace like a URL list's lines, judged by its bytes
        disc = Discovery("urls", url)
        disc.entries.append(Entry(url, url, "url", label, split, origin, url, url))
        return disc
    if is_image_name(name):
        disc = Discovery("file", url)
        disc.entries.append(Entry(url, url, "file", label, split, origin))
        return disc
    raise DatasetError(
        f"{url}: unsupported source; expected a prefix (folder), a .csv or .tsv manifest, a .txt list of URLs, "
        f"a .zip/.tar archive or an image ({describe()})"
    )


def discover(
    source: Path | str,
    *,
    workspace_files: Path,
    label: str | None = None,
    split: str | None = None,
    max_expansion: float = MAX_EXPANSION,
) -> Discovery:
    """Entries of any supported source (a local path, or a URL: see `discover_remote`); raises DatasetError when
    the source itself is unusable (an archive: also when it would expand beyond `max_expansion` times its size)."""
    if isinstance(source, str) and is_remote(source):
        return discover_remote(
            source, workspace_files=workspace_files, label=label, split=split, max_expansion=max_expansion
        )
    source = Path(source)
    if not os.path.lexists(source):
        raise DatasetError(f"{source}: no such file or folder")
    if source.is_dir():
        return discover_folder(source, label=label, split=split)
    if not source.is_file():
        raise DatasetError(f"{source}: not a regular file or folder")
    lowered = source.name.lower()
    if is_archive(source):
        origin = os.fsdecode(os.path.abspath(source))
        return _discover_archive(source, origin, str(source), workspace_files, label, split, max_expansion)
    if lowered.endswith(MANIFEST_SUFFIXES):
        return discover_manifest(source, label=label, split=split)
    if lowered.endswith(URL_LIST_SUFFIXES):
        return discover_url_list(source, label=label, split=split)
    if is_image_name(source.name):  # named on the command line: taken even when hidden
        full = os.path.abspath(source)
        disc = Discovery("file", full)
        disc.entries.append(Entry(full, full, "file", label, split, "manual" if split else None))
        return disc
    missing = unavailable_reason(source.suffix)
    if missing:
        raise DatasetError(f"{source}: {missing}")
    raise DatasetError(
        f"{source}: unsupported source; expected a folder, a .csv or .tsv manifest (path,label[,split]), a .txt list "
        f"of URLs, a .zip/.tar archive or an image file ({describe()})"
    )
