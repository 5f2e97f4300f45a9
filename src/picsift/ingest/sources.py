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

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from picsift.data.formats import describe, is_image_name, unavailable_reason
from picsift.data.walk import Walker, WalkResult, hidden_files, is_hidden
from picsift.errors import DatasetError, LabelError
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


def _class_folder(
    walker: Walker, folder: Path, disc: Discovery, source: str, split: str | None, split_origin: str | None
) -> None:
    """Every image under a class folder (recursively) is that class."""
    label = label_from_name(folder.name) or None
    found = walker.walk(folder)
    disc.skipped += _skips(found)
    disc.entries += [Entry(os.fspath(f), source, disc.kind, label, split, split_origin) for f in found.images]


def _class_folders(
    walker: Walker,
    level: tuple[list[Path], WalkResult],
    disc: Discovery,
    source: str,
    split: str | None,
    split_origin: str | None,
) -> None:
    """`root/<class>/**` from `walker.split(root)`: images under a class folder are that class; loose
    images are unlabeled."""
    dirs, loose = level
    disc.skipped += _skips(loose)
    disc.entries += [Entry(os.fspath(f), source, disc.kind, None, split, split_origin) for f in loose.images]
    for d in dirs:
        _class_folder(walker, d, disc, source, split, split_origin)


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
    forced_origin = "manual" if split else None
    try:
        os.listdir(root)
    except OSError as e:
        raise DatasetError(f"cannot list folder {root}: {e.strerror or e}") from e
    walker = Walker(root)
    if label is not None:
        disc = Discovery(kind or "flat", source)
        found = walker.walk()
        disc.skipped += _skips(found)
        disc.entries += [Entry(os.fspath(f), source, disc.kind, label, split, forced_origin) for f in found.images]
        return disc
    dirs, top = walker.split(root)
    by_split = {d: normalize_split(d.name) for d in dirs}
    if "train" in by_split.values():
        disc = Discovery(kind or "split-folders", source)
        disc.skipped += _skips(top)
        disc.skipped += [(os.fspath(f), "outside the train/val/test folders") for f in top.images]
        for d, canonical in by_split.items():
            if canonical is None:
                found = walker.walk(d)
                disc.skipped += _skips(found)
                why = f"folder {d.name!r} is not a split (train, val or test)"
                disc.skipped += [(os.fspath(f), why) for f in found.images]
                continue
            _class_folders(walker, walker.split(d), disc, source, split or canonical, forced_origin or "source")
        return disc
    if dirs:
        disc = Discovery(kind or "folder", source)
        _class_folders(walker, (dirs, top), disc, source, split, forced_origin)
        return disc
    disc = Discovery(kind or "flat", source)
    disc.skipped += _skips(top)
    disc.entries += [Entry(os.fspath(f), source, disc.kind, None, split, forced_origin) for f in top.images]
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


def _manifest_entry(
    cells: list[str], columns: _ManifestColumns, where: str, base: Path, source: str, label: str | None,
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
    full, hint = resolve_listed_path(base, raw_path)
    if os.path.isdir(full):
        raise DatasetError(f"{where}: {raw_path} is a folder, expected an image file")
    if not os.path.isfile(full):
        raise DatasetError(f"{where}: file not found: {raw_path} (relative to {base}{'; ' + hint if hint else ''})")
    return full, Entry(full, source, "csv", row_label, row_split, origin, None, where)


def discover_manifest(manifest: Path, *, label: str | None = None, split: str | None = None) -> Discovery:
    """A delimited file of `path,label[,split]` (header optional), paths relative to its folder.

    The delimiter (`, ; <tab> |`) is detected (see `picsift.ingest.delimited`); every data line must
    have as many columns as the header (or, without one, the first line). Raises DatasetError listing
    each bad line as "labels.csv line 4: ..." before anything is written.
    """
    manifest = Path(os.path.abspath(manifest))
    source, name = os.fsdecode(manifest), manifest.name
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
            key, entry = _manifest_entry(cells, columns, where, manifest.parent, source, label, split)
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
    _raise_errors(errors)
    return disc


def discover_url_list(url_list: Path, *, label: str | None = None, split: str | None = None) -> Discovery:
    """A text file with one URL per line (optionally `URL,label[,split]`); `#` starts a comment."""
    url_list = Path(os.path.abspath(url_list))
    source = os.fsdecode(url_list)
    disc = Discovery("urls", source)
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(read_utf8_text(url_list).splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        parts = [p.strip() for p in text.replace("\t", ",").split(",")]
        if len(parts) == 1:
            parts = text.split()
        url = parts[0]
        if not is_url(url):
            errors.append(f"{url_list.name} line {line}: not an http(s) URL: {url[:80]!r}")
            continue
        row_label = parts[1] if len(parts) > 1 and parts[1] else label
        row_split, origin = split, "manual" if split else None
        if len(parts) > 2 and parts[2] and not split:
            row_split, origin = normalize_split(parts[2]), "source"
            if row_split is None:
                errors.append(
                    f"{url_list.name} line {line}: unknown split {parts[2]!r} (expected one of {', '.join(SPLITS)})"
                )
                continue
        if url in seen:
            disc.skipped.append((url, f"listed again on line {line} (first on line {seen[url]})"))
            continue
        seen[url] = line
        disc.entries.append(Entry(url, url, "url", row_label, row_split, origin, url, f"{url_list.name} line {line}"))
    _raise_errors(errors)
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


def discover(
    source: Path,
    *,
    workspace_files: Path,
    label: str | None = None,
    split: str | None = None,
    max_expansion: float = MAX_EXPANSION,
) -> Discovery:
    """Entries of any supported source; raises DatasetError when the source itself is unusable (an archive:
    also when it would expand beyond `max_expansion` times its size)."""
    if not os.path.lexists(source):
        raise DatasetError(f"{source}: no such file or folder")
    if source.is_dir():
        return discover_folder(source, label=label, split=split)
    if not source.is_file():
        raise DatasetError(f"{source}: not a regular file or folder")
    lowered = source.name.lower()
    if is_archive(source):
        extracted = extract(source, workspace_files / "archives", max_ratio=max_expansion)
        top, hidden = _archive_root(extracted.folder)
        disc = discover_folder(
            top, label=label, split=split, source=os.fsdecode(os.path.abspath(source)), kind="archive"
        )
        disc.skipped += hidden + [(f"{source}!{m}", why) for m, why in extracted.refused]
        return disc
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
