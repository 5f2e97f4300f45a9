"""File and folder names made from user text: labels, class names, names inside archives, run names.

Every writer that turns such text into a path goes through `safe_filename` (one name) or
`UniqueNames` (the names of one folder), and checks the final path with `inside`, so a label like
`..`, `a/b` or `CON` can neither leave the target folder nor fail on another operating system.

The rules are those of the file systems picsift runs on: no `/`, `\\`, NUL or control characters, none
of Windows' forbidden `<>:"|?*` nor its reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with
or without an extension), no trailing dots or spaces (Windows drops them), at most 255 UTF-8 bytes
(ext4, APFS, NTFS), and names that stay distinct on case-insensitive file systems (APFS and NTFS by
default). Names are kept in Unicode NFC, since APFS treats NFC and NFD spellings as one name.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from picsift.errors import UnsafePathError

MAX_NAME_BYTES = 255
_DIGITS = "123456789\u00b9\u00b2\u00b3"  # Windows also reserves COM¹, COM², COM³ (and LPT)
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {f"{p}{d}" for p in ("COM", "LPT") for d in _DIGITS}
)
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f/\\<>:"|?*]')
_MAX_EXT_BYTES = 16  # a longer "extension" is part of the name, not an extension
_TAG_CHARS = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_TAG_CHARS]


def _without_surrogates(text: str) -> str:
    """Undecodable bytes of a file name (lone surrogates from os.fsdecode) as visible `%XX`."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        out = []
        for ch in text:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:
                out.append(f"%{code - 0xDC00:02X}")
            elif 0xD800 <= code <= 0xDFFF:
                out.append("_")
            else:
                out.append(ch)
        return "".join(out)


def _split_ext(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    if not stem or len(ext.encode("utf-8")) > _MAX_EXT_BYTES:
        return name, ""
    return stem, ext


def _tagged(name: str, tag: str, max_bytes: int) -> str:
    """`name` with `-tag` before its extension, cut to `max_bytes` UTF-8 bytes (whole characters)."""
    stem, ext = _split_ext(name)
    room = max(0, max_bytes - len(tag.encode("utf-8")) - 1 - len(ext.encode("utf-8")))
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
    return f"{stem}-{tag}{ext}" if stem else f"{tag}{ext}"


def safe_filename(text: str, *, fallback: str = "_", allow_hidden: bool = True, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One file or folder name for `text`, safe on Linux, macOS and Windows.

    Forbidden and control characters (and `/`, `\\`) become `_`; surrounding spaces and trailing dots
    go; `.`, `..` and names left empty become `fallback`; a reserved Windows name gets a leading `_`
    (`CON.txt` -> `_CON.txt`); with `allow_hidden=False` leading dots become `_` (a hidden class folder
    would be skipped when imported again). A name over `max_bytes` UTF-8 bytes is cut, keeping its
    extension, and tagged with 8 hex digits of the SHA-256 of `text`, so two long names stay distinct.
    The result is in Unicode NFC. Same `text`, same name.

    Raises ValueError when `fallback` is itself not a safe name.
    """
    name = unicodedata.normalize("NFC", _without_surrogates(str(text)))
    name = _FORBIDDEN.sub("_", name).strip().rstrip(" .")
    if not allow_hidden and name.startswith("."):
        name = "_" * (len(name) - len(name.lstrip("."))) + name.lstrip(".")
    if not name:
        if fallback != safe_filename(fallback, fallback="_", allow_hidden=allow_hidden, max_bytes=max_bytes):
            raise ValueError(f"fallback {fallback!r} is not a safe file name")
        name = fallback
    if name.split(".")[0].rstrip(" ").upper() in WINDOWS_RESERVED:
        name = "_" + name
    if len(name.encode("utf-8")) > max_bytes:
        name = _tagged(name, _digest(str(text)), max_bytes)
    return name


def _folded(name: str) -> str:
    """The key under which a case- and normalization-insensitive file system (APFS, NTFS) files a name."""
    return unicodedata.normalize("NFC", name.casefold())


class UniqueNames:
    """Safe, distinct names for the distinct texts written into one folder.

    Two texts whose safe names coincide, ignoring case (`Cat` and `cat`, or `a/b` and `a_b`), would be
    merged on a case-insensitive file system; the later one gets `-<8 hex digits of its SHA-256>`
    before its extension. Asking again for a text returns its name (`new` gives another file of the
    same text a name of its own). `taken` are names already in use.
    """

    def __init__(
        self,
        *,
        fallback: str = "_",
        allow_hidden: bool = True,
        max_bytes: int = MAX_NAME_BYTES,
        taken: Iterable[str] = (),
    ) -> None:
        self.fallback, self.allow_hidden, self.max_bytes = fallback, allow_hidden, max_bytes
        self._names: dict[str, str] = {}
        self._used = {_folded(t) for t in taken}

    def __call__(self, text: str) -> str:
        if text not in self._names:
            self._names[text] = self.new(text)
        return self._names[text]

    def new(self, text: str) -> str:
        """A name for `text` not given out before, even when `text` was (two files named `a.jpg`)."""
        name = safe_filename(text, fallback=self.fallback, allow_hidden=self.allow_hidden, max_bytes=self.max_bytes)
        base, n = name, 1
        while _folded(name) in self._used:
            name = _tagged(base, _digest(text if n == 1 else f"{text}\0{n}"), self.max_bytes)
            n += 1
        self._used.add(_folded(name))
        return name


def unique_names(
    texts: Iterable[str],
    *,
    fallback: str = "_",
    allow_hidden: bool = True,
    max_bytes: int = MAX_NAME_BYTES,
    taken: Iterable[str] = (),
) -> dict[str, str]:
    """{text: safe name} for one folder, distinct ignoring case and from `taken`; the texts are taken
    in sorted order, so the mapping depends only on the set of texts (`Cat` keeps its name, `cat`
    gets a tag)."""
    names = UniqueNames(fallback=fallback, allow_hidden=allow_hidden, max_bytes=max_bytes, taken=taken)
    return {t: names(t) for t in sorted(set(texts))}


def inside(root: Path, *parts: str) -> Path:
    """`root/parts...`, after checking that it resolves (links followed) to a path strictly inside `root`.

    The second line of defence after `safe_filename`. Raises UnsafePathError otherwise.
    """
    path = Path(root).joinpath(*parts)
    real_root, real = Path(root).resolve(), path.resolve()
    if real == real_root or not real.is_relative_to(real_root):
        raise UnsafePathError(f"refusing to write {path}: it lies outside {root}")
    return path
