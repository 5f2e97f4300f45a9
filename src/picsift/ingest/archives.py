"""Safe extraction of zip and tar archives into the workspace (the user's archive is only read).

A member whose name would land outside the extraction folder (absolute paths, `..`), a link, a
device or an encrypted entry is refused and reported, never written; the rest is extracted. An
archive is extracted once per content hash, so importing it again reuses the folder.

Zip bombs: an archive may expand to at most `max_ratio` (default 100) times its own size (at least
MIN_ALLOWED_BYTES, at most MAX_EXTRACTED_BYTES). This is checked on the member headers before anything is
written (the sizes the members declare) and again on the bytes really written, since
headers can lie. Extraction goes to `<sha>.partial-<pid>/`, renamed when complete; partial folders a killed
import left behind are removed by the next extraction (their process is gone, or they are older than a day).

Each part of a member's path is written under `picsift.filenames.safe_filename` (so a folder named
`CON` or `a:b` extracts on any system), distinct per folder even on a case-insensitive file system
(`Cat/` and `cat/` stay two folders: the second gets a short hash suffix).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from picsift.atomic import pid_alive
from picsift.config import check_number
from picsift.data.hashing import sha256_file
from picsift.errors import DatasetError
from picsift.filenames import UniqueNames, inside
from picsift.jsonio import write_json

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# An archive may not expand beyond this (zip bombs): far above any real image dataset a laptop holds.
MAX_EXTRACTED_BYTES = 64 * 1024**3
# ... nor beyond this many times its own size: image files barely compress (JPEG, PNG: about 1:1; raw BMP or
# TIFF: a few times); 1 MB expanding to 1 GB is a bomb. `picsift import --max-expansion` raises it.
MAX_EXPANSION = 100.0
MIN_ALLOWED_BYTES = 16 * 1024**2  # a tiny archive may always expand to this much
STALE_PARTIAL_S = 24 * 3600  # a partial extraction older than this is abandoned, whatever its pid
_DONE = ".extracted.json"
_PARTIAL = ".partial-"
_CHUNK = 1 << 20


@dataclass
class Extracted:
    """An archive extracted into the workspace: where, the archive's hash and the members refused (and why)."""

    folder: Path  # where the members were written (inside the workspace)
    sha256: str  # of the archive file
    refused: list[tuple[str, str]] = field(default_factory=list)  # (member name, reason)
    reused: bool = False  # extracted by an earlier import


def is_archive(path: Path) -> bool:
    """Whether the file name ends with one of ARCHIVE_SUFFIXES (case-insensitive)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in ARCHIVE_SUFFIXES)


def safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path a member may be written to, or None when it would escape the folder (or holds a NUL,
    which no file system takes in a name: a tar's PAX header can carry one)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\0" in name:
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return PurePosixPath(*parts)


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as its maker meant it. Without the zip's UTF-8 flag Python reads names as
    cp437, but macOS and most current tools write UTF-8 there anyway: bytes that decode as UTF-8
    (and are not plain ASCII) are taken as UTF-8, so `crème/` does not become `creÌ€me/`."""
    name = info.filename
    if info.flag_bits & 0x800 or name.isascii():
        return name
    try:
        return name.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


class _SafeNames:
    """Safe, distinct relative paths for the members: the names of each folder through one UniqueNames.

    A text named both as a folder and as a file in one folder (`a/b` and `a`, or `CON/x` and `CON`) gets two
    names, so neither write fails on the other."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._folders: dict[PurePosixPath, UniqueNames] = {}
        self._given: dict[tuple[PurePosixPath, str, bool], str] = {}
        self._members: dict[tuple[PurePosixPath, str, bool], str] = {}  # the member first written to each file

    def _name(self, folder: PurePosixPath, text: str, is_folder: bool) -> str:
        key = (folder, text, is_folder)
        if key not in self._given:
            self._given[key] = self._folders.setdefault(folder, UniqueNames()).new(text)
        return self._given[key]

    def target(self, rel: PurePosixPath, member: str) -> Path:
        """Where member `rel` (named `member` in the archive) is written: inside `dest`, each name made distinct
        within its folder. Two members whose names read as one path (`a/./b`, `a\\b` and `a/b`) get two files; a
        member listed again under the same name replaces the first (how zip and tar updates work)."""
        out = PurePosixPath()
        for part in rel.parts[:-1]:
            out = out / self._name(out, part, True)
        key = (out, rel.parts[-1], False)
        first = self._members.setdefault(key, member)
        if first != member:
            name = self._folders.setdefault(out, UniqueNames()).new(rel.parts[-1])
        else:
            name = self._name(out, rel.parts[-1], False)
        return inside(self.dest, *(out / name).parts)


class _Budget:
    """How many bytes the archive may still expand to: checked on the declared sizes first, then on every
    chunk written (headers can lie)."""

    def __init__(self, archive: Path, max_ratio: float) -> None:
        self.archive = archive
        self.size = archive.stat().st_size
        self.max_ratio = max_ratio
        self.limit = allowed_bytes(self.size, max_ratio)
        self.left = self.limit

    def refuse(self, total: int, what: str) -> DatasetError:
        """The DatasetError (not raised) refusing an archive that expands to `total` bytes."""
        ratio = total / max(self.size, 1)
        return DatasetError(
            f"{self.archive}: {what} {total} bytes from {self.size} ({ratio:.0f}:1), beyond the {self.limit} "
            f"allowed ({self.max_ratio:g}:1, at most {MAX_EXTRACTED_BYTES}); refused as a possible zip bomb, "
            "nothing imported. If the archive is genuine, raise the limit with --max-expansion RATIO"
        )

    def check_declared(self, total: int) -> None:
        """Raise DatasetError when the members' declared sizes already exceed the limit."""
        if total > self.limit:
            raise self.refuse(total, "its members declare")

    def copy(self, src: IO[bytes], dest: Path) -> None:
        """Copy a member to `dest` in chunks; DatasetError as soon as the archive's output exceeds the limit."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as out:
            while chunk := src.read(_CHUNK):
                self.left -= len(chunk)
                if self.left < 0:
                    raise self.refuse(self.limit - self.left, "it expands to more than")
                out.write(chunk)


def allowed_bytes(archive_bytes: int, max_ratio: float = MAX_EXPANSION) -> int:
    """The most bytes an archive of `archive_bytes` may expand to: `max_ratio` times its size, at least
    MIN_ALLOWED_BYTES, at most MAX_EXTRACTED_BYTES."""
    return int(min(MAX_EXTRACTED_BYTES, max(MIN_ALLOWED_BYTES, archive_bytes * max_ratio)))


def _check_zip_headers(zf: zipfile.ZipFile, budget: _Budget) -> None:
    """Refuse before writing anything when the central directory declares more than the budget."""
    budget.check_declared(sum(i.file_size for i in zf.infolist() if not _is_dir(i)))


def _is_dir(info: zipfile.ZipInfo) -> bool:
    """ZipInfo.is_dir, for a member of any name (it raises IndexError on an empty one, e.g. a name of one NUL)."""
    return info.filename.endswith("/")


def _extract_zip(archive: Path, dest: Path, refused: list[tuple[str, str]], budget: _Budget) -> None:
    try:
        zf = zipfile.ZipFile(archive)  # noqa: SIM115 (closed by the `with zf` below)
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetError(f"{archive}: not a readable zip archive ({e})") from e
    names = _SafeNames(dest)
    with zf:
        _check_zip_headers(zf, budget)
        for info in zf.infolist():
            if _is_dir(info):
                continue
            rel = safe_member_path(zip_member_name(info))
            if rel is None:
                refused.append((info.filename, "unsafe path outside the archive folder, not extracted"))
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                refused.append((info.filename, "symbolic link, not extracted"))
                continue
            if info.flag_bits & 0x1:
                refused.append((info.filename, "encrypted member, not extracted"))
                continue
            target = names.target(rel, info.filename)
            try:
                with zf.open(info) as src:
                    budget.copy(src, target)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, EOFError) as e:
                target.unlink(missing_ok=True)
                refused.append((info.filename, f"corrupt member, not extracted: {e}"))


def _extract_tar(archive: Path, dest: Path, refused: list[tuple[str, str]], budget: _Budget) -> None:
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the `with tf` below)
    except (tarfile.TarError, OSError) as e:
        raise DatasetError(f"{archive}: not a readable tar archive ({e})") from e
    names = _SafeNames(dest)
    with tf:
        try:
            for member in tf:
                if member.isdir():
                    continue
                if not member.isfile():
                    kind = "link" if (member.issym() or member.islnk()) else "special file"
                    refused.append((member.name, f"{kind}, not extracted"))
                    continue
                rel = safe_member_path(member.name)
                if rel is None:
                    refused.append((member.name, "unsafe path outside the archive folder, not extracted"))
                    continue
                try:
                    tarfile.data_filter(member, str(dest))  # the standard library's own safety rules
                except tarfile.FilterError as e:
                    refused.append((member.name, f"refused by the tar safety filter: {e}"))
                    continue
                if member.size > budget.left:  # the header alone says it does not fit
                    raise budget.refuse(budget.limit - budget.left + member.size, "its members declare at least")
                src = tf.extractfile(member)
                if src is None:
                    refused.append((member.name, "unreadable member, not extracted"))
                    continue
                with src:
                    budget.copy(src, names.target(rel, member.name))
        except (tarfile.TarError, EOFError, OSError) as e:
            # A truncated archive: keep what was extracted, report the rest.
            refused.append((archive.name, f"archive is truncated or corrupt after this point: {e}"))


def remove_stale_partials(into: Path, now: float | None = None) -> list[Path]:
    """Remove the `<sha>.partial-<pid>/` folders of extractions that were killed: their process no longer runs,
    or they are older than STALE_PARTIAL_S. Returns the folders removed."""
    removed: list[Path] = []
    if not into.is_dir():
        return removed
    now = time.time() if now is None else now
    for p in into.iterdir():
        _, sep, pid = p.name.rpartition(_PARTIAL)
        if not sep or not pid.isdigit() or not p.is_dir():
            continue
        try:
            age = now - p.stat().st_mtime
        except OSError:
            continue
        if int(pid) != os.getpid() and (not pid_alive(int(pid)) or age > STALE_PARTIAL_S):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
            logger.info("removed %s, left by an interrupted extraction", p)
    return removed


def extract(archive: Path, into: Path, *, max_ratio: float = MAX_EXPANSION) -> Extracted:
    """Extract `archive` into `into/<sha256>/` (once); returns where and what was refused.

    Raises DatasetError, with nothing extracted, for an unreadable archive or one that would expand beyond
    `allowed_bytes(size, max_ratio)` (declared by its headers, or found while writing), ConfigError for a
    `max_ratio` below 1. Removes the partial folders killed extractions left in `into` first.
    """
    check_number(max_ratio, "--max-expansion", low=1)
    sha = sha256_file(archive)
    dest = into / sha
    done = into / f"{sha}{_DONE}"  # written last: a folder without it is an interrupted extraction
    if done.is_file() and dest.is_dir():
        before = [(str(m), str(r)) for m, r in json.loads(done.read_text()).get("refused", [])]
        return Extracted(dest, sha, before, reused=True)
    remove_stale_partials(into)
    partial = into / f"{sha}{_PARTIAL}{os.getpid()}"
    if partial.exists():  # this process's own, from an extraction that failed without cleaning up
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    refused: list[tuple[str, str]] = []
    budget = _Budget(archive, max_ratio)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, partial, refused, budget)
        else:
            _extract_tar(archive, partial, refused, budget)
        if dest.exists():  # a folder from an interrupted import
            shutil.rmtree(dest)
        partial.rename(dest)
        write_json(done, {"archive": os.fsdecode(archive), "refused": refused}, indent=None)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for name, why in refused:
        logger.warning("%s: member %r %s", archive, name, why)
    return Extracted(dest, sha, refused)
