"""The one folder walk: which files under a path are images, and which are skipped and why.

Every command that takes a folder (import, predict, drift checks) walks it here, so they all agree:
- an image is a regular file whose suffix is a readable format (`picsift.data.formats`), any case;
- hidden files and folders (a leading dot: `.git/`, `.ipynb_checkpoints/`) and system files
  (`Thumbs.db`, `__MACOSX/`) are skipped, each file under them reported;
- symbolic links are followed, to files and to folders (as torchvision, fastai and timm do), except
  a link that would loop (to a folder above it), one to a folder inside the walked tree (its files
  are there already: not counted twice) and one to a folder already walked through another link;
- broken links, sockets, devices and folders that cannot be listed are reported.

Loop protection follows real paths (`os.path.realpath`) and, for bind mounts, each folder's
(st_dev, st_ino): no folder is entered twice, so a walk always ends.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from picsift.data.formats import is_image_name, unavailable_reason

HIDDEN = "hidden or system file"
# Files an operating system or tool leaves behind; never data.
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin"})


@dataclass(frozen=True)
class SkippedFile:
    """A file (or link, or folder) left out of a walk; `reason` starts with its kind ("broken link: ...").
    `path` is a URL (text) for an object in object storage."""

    path: Path | str
    reason: str


@dataclass
class WalkResult:
    """Images found (in walk order: a folder's files, then its sub-folders, each sorted by name) and
    everything else under the walked path, each with why it was left out."""

    images: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def extend(self, other: WalkResult) -> None:
        """Append another walk's images and skipped files to this one."""
        self.images += other.images
        self.skipped += other.skipped


def is_hidden(name: str) -> bool:
    """A dot file or folder, or a file an operating system leaves behind (`Thumbs.db`, `__MACOSX`)."""
    return name.startswith(".") or name.lower() in SYSTEM_NAMES


def file_skip_reason(name: str) -> str | None:
    """Why a regular file of this name is not an image (None when it is one): hidden, or its suffix."""
    if is_hidden(name):
        return HIDDEN
    if is_image_name(name):
        return None
    suffix = os.path.splitext(name)[1].lower()
    return unavailable_reason(suffix) or f"not an image file ({suffix or 'no extension'})"


def reason_kind(reason: str) -> str:
    """The kind of a reason, without its detail: "broken link: target x does not exist" -> "broken link"."""
    cuts = [i for i in (reason.find(m) for m in (" on ", " (", ": ")) if i > 0]
    return reason[: min(cuts)] if cuts else reason


def count_by_kind(skipped: list[SkippedFile]) -> dict[str, int]:
    """{reason kind: files}, most frequent first."""
    return dict(Counter(reason_kind(s.reason) for s in skipped).most_common())


def hidden_files(path: Path) -> list[SkippedFile]:
    """Everything under a hidden file or folder, each reported as hidden (links inside are not followed)."""
    if path.is_symlink() or not path.is_dir():
        return [SkippedFile(path, HIDDEN)]
    out: list[SkippedFile] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        out += [SkippedFile(Path(dirpath, n), HIDDEN) for n in sorted(filenames + links)]
    return out


def _within(path: str, folder: str) -> bool:
    """`path` is `folder` or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Walker:
    """One walk of the tree under `root`, which may be entered folder by folder (an import's class
    folders are walked one at a time) while links and loops are judged against the whole tree.
    Paths found are under `root` as given (relative when it is)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root_real = os.path.realpath(self.root)
        self._entered: dict[tuple[int, int], Path] = {}
        try:
            st = os.stat(self.root)
            self._entered[(st.st_dev, st.st_ino)] = self.root
        except OSError:
            pass

    def walk(self, folder: Path | None = None) -> WalkResult:
        """All images under `folder` (the root, or a folder `split` returned), recursively."""
        out = WalkResult()
        for here in self.iter_walk(folder):
            out.extend(here)
        return out

    def iter_walk(self, folder: Path | None = None) -> Iterator[WalkResult]:
        """`walk`, one folder at a time: each folder's images and skipped entries, in the same order, so a
        tree of millions of files is never listed in memory at once (only the folders still to visit)."""
        pending = [Path(folder) if folder is not None else self.root]
        while pending:
            subdirs, here = self.split(pending.pop())
            yield here
            pending += reversed(subdirs)  # depth first, in name order

    def split(self, folder: Path | None = None) -> tuple[list[Path], WalkResult]:
        """One level of `folder`: the sub-folders to walk (links already judged) and the images and
        skipped entries directly inside it."""
        folder = Path(folder) if folder is not None else self.root
        out = WalkResult()
        subdirs: list[Path] = []
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            out.skipped.append(SkippedFile(folder, f"cannot list folder: {e.strerror or e}"))
            return subdirs, out
        for entry in entries:
            path = Path(entry.path)
            if is_hidden(entry.name):
                out.skipped += hidden_files(path)
            elif _is_dir(entry):
                why = self._enter(path, folder, entry.is_symlink())
                if why is None:
                    subdirs.append(path)
                else:
                    out.skipped.append(SkippedFile(path, why))
            elif _is_file(entry):
                why = file_skip_reason(entry.name)
                if why is None:
                    out.images.append(path)
                else:
                    out.skipped.append(SkippedFile(path, why))
            elif entry.is_symlink():
                out.skipped.append(SkippedFile(path, _link_problem(path)))
            else:
                out.skipped.append(SkippedFile(path, "not a regular file (socket, FIFO or device)"))
        return subdirs, out

    def _enter(self, path: Path, parent: Path, is_link: bool) -> str | None:
        """None when the folder at `path` is to be walked (and is marked walked); else why not."""
        if is_link:
            target = os.path.realpath(path)
            if _within(os.path.realpath(parent), target) or _within(self._root_real, target):
                return f"link loop: points to {target}, the folder it is in or one above it"
            if _within(target, self._root_real):
                return f"link to a folder inside the same tree: {target} (not followed, so no image is counted twice)"
        try:
            st = os.stat(path)
        except OSError as e:
            return f"cannot open folder: {e.strerror or e}"
        key = (st.st_dev, st.st_ino)
        if key in self._entered:
            return f"folder already walked: the same folder as {self._entered[key]}"
        self._entered[key] = path
        return None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:  # a link loop of links (a -> b -> a) cannot be resolved
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=True)
    except OSError:
        return False


def _link_problem(path: Path) -> str:
    """Why a link that is neither a file nor a folder cannot be read."""
    try:
        target = os.readlink(path)
        os.stat(path)
    except FileNotFoundError:
        return f"broken link: its target {target} does not exist"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"link loop: {path} leads back to itself through links"
        return f"broken link: {e.strerror or e}"
    return "not a regular file (socket, FIFO or device)"


def walk_images(path: Path) -> WalkResult:
    """The images at `path`: a folder walked recursively (see the module notes), or one file.

    A single file is an image when its suffix is a readable format; otherwise it is skipped with the
    reason. A path that does not exist yields one skipped entry ("no such file or folder").
    """
    path = Path(path)
    if path.is_dir():
        return Walker(path).walk()
    if path.is_file():
        why = file_skip_reason(path.name)
        return WalkResult([path], []) if why is None else WalkResult([], [SkippedFile(path, why)])
    if path.is_symlink():
        return WalkResult([], [SkippedFile(path, _link_problem(path))])
    return WalkResult([], [SkippedFile(path, "no such file or folder")])
