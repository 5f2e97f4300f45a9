"""The one list of image formats picsift reads: file suffixes, Pillow format names and MIME types.

Every command takes its answer from here: which files a folder walk counts as images
(`picsift.data.walk`), which formats the decoder opens (`picsift.data.images`), which uploads the
server accepts, which suffix a downloaded or uploaded image is stored under.

HEIC/HEIF (iPhone photos) is read through the optional pillow-heif plugin (`pip install 'picsift[heic]'`),
registered with Pillow once, when this module is first imported; without it, .heic/.heif files are
reported with `HEIF_MISSING` as their reason. AVIF is read by Pillow itself (11.3 and later, when built
with libavif).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, features

HEIF_MISSING = "HEIC/HEIF needs the pillow-heif plugin: pip install 'picsift[heic]'"
AVIF_MISSING = "AVIF needs Pillow 11.3 or later built with AVIF support: pip install -U pillow"


@dataclass(frozen=True)
class ImageFormat:
    """One readable format. `name` is Pillow's format id (`Image.format`); files of this format may
    also open under the ids in `also` (camera JPEGs with a second picture open as "MPO")."""

    name: str
    label: str  # as shown to people
    suffixes: tuple[str, ...]  # lower case, with the dot; the first is the one files are saved under
    mime_types: tuple[str, ...]
    also: tuple[str, ...] = ()


JPEG = ImageFormat(
    "JPEG", "JPEG", (".jpg", ".jpeg", ".jpe", ".jfif"), ("image/jpeg", "image/jpg", "image/pjpeg"), ("MPO",)
)
PNG = ImageFormat("PNG", "PNG", (".png",), ("image/png",))
GIF = ImageFormat("GIF", "GIF", (".gif",), ("image/gif",))
BMP = ImageFormat("BMP", "BMP", (".bmp",), ("image/bmp", "image/x-ms-bmp"))
TIFF = ImageFormat("TIFF", "TIFF", (".tif", ".tiff"), ("image/tiff",))
WEBP = ImageFormat("WEBP", "WebP", (".webp",), ("image/webp",))
PNM = ImageFormat(
    "PPM",
    "PPM/PGM/PBM",
    (".ppm", ".pgm", ".pbm", ".pnm"),
    ("image/x-portable-pixmap", "image/x-portable-graymap", "image/x-portable-bitmap", "image/x-portable-anymap"),
)
AVIF = ImageFormat("AVIF", "AVIF", (".avif",), ("image/avif",))
HEIF = ImageFormat("HEIF", "HEIC/HEIF", (".heic", ".heif"), ("image/heic", "image/heif"))


def _register_heif() -> bool:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


HEIF_AVAILABLE = _register_heif()
AVIF_AVAILABLE = bool(features.check("avif"))

# Known formats whose decoder is absent here, with what to install.
UNAVAILABLE: dict[ImageFormat, str] = {}
if not AVIF_AVAILABLE:
    UNAVAILABLE[AVIF] = AVIF_MISSING
if not HEIF_AVAILABLE:
    UNAVAILABLE[HEIF] = HEIF_MISSING

READABLE: tuple[ImageFormat, ...] = tuple(
    f for f in (JPEG, PNG, GIF, BMP, TIFF, WEBP, PNM, AVIF, HEIF) if f not in UNAVAILABLE
)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(s for f in READABLE for s in f.suffixes)

Image.init()
# The ids handed to `Image.open(formats=...)`: no other Pillow plugin is ever tried on a file.
PILLOW_FORMATS: tuple[str, ...] = tuple(n for f in READABLE for n in (f.name, *f.also) if n in Image.OPEN)

_BY_NAME = {n: f for f in READABLE for n in (f.name, *f.also)}
_BY_MIME = {m: f for f in READABLE for m in f.mime_types}
_MISSING_BY_SUFFIX = {s: why for f, why in UNAVAILABLE.items() for s in f.suffixes}
# ISO base media (HEIF/AVIF) files: bytes 4-8 are "ftyp", then the major brand.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def is_image_name(name: str) -> bool:
    """True when the file name's suffix (any case) is one of a readable format."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def unavailable_reason(suffix: str) -> str | None:
    """For a suffix of a known format whose decoder is not installed (".heic" without pillow-heif): what to install."""
    return _MISSING_BY_SUFFIX.get(suffix.lower())


def missing_decoder_for(data: bytes) -> str | None:
    """When `data` is a HEIF or AVIF file that this installation cannot decode: what to install; else None."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    brand = data[8:12]
    if brand in _AVIF_BRANDS or (brand == b"mif1" and b"avif" in data[16:32]):
        return UNAVAILABLE.get(AVIF)
    if brand in _HEIF_BRANDS:
        return UNAVAILABLE.get(HEIF)
    return None


def signature_format(data: bytes) -> ImageFormat | None:
    """The readable format whose signature (Pillow's own check of the first bytes) `data` starts with,
    or None; says what a file claims to be even when its header is too damaged to open."""
    head = data[:16]
    for name in PILLOW_FORMATS:
        accept = Image.OPEN[name][1]
        result = accept(head) if accept is not None else False
        if result and not isinstance(result, str):  # a str is a warning, not a match
            if _BY_NAME[name] is PNM and not _is_pnm_header(head):
                continue  # Pillow accepts any "P" plus one of several letters: text such as "PyTorch ..." too
            return _BY_NAME[name]
    return None


def _is_pnm_header(head: bytes) -> bool:
    """A Netpbm magic number, "P1" to "P7" (or "Pf" for PFM), followed by whitespace."""
    return len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"1234567f" and head[2:3] in b" \t\r\n"


def format_named(name: str | None) -> ImageFormat | None:
    """The readable format behind a Pillow format id ("MPO" -> JPEG), or None."""
    return _BY_NAME.get((name or "").upper())


def suffix_for_format(name: str | None) -> str | None:
    """The suffix to save a file of this Pillow format under (".jpg" for "JPEG" and "MPO"), or None."""
    fmt = format_named(name)
    return fmt.suffixes[0] if fmt else None


def suffix_for_mime(mime_type: str | None) -> str | None:
    """The suffix for a Content-Type such as "image/avif", or None when it is not a readable format."""
    fmt = _BY_MIME.get((mime_type or "").lower())
    return fmt.suffixes[0] if fmt else None


def describe() -> str:
    """The readable formats for messages: "JPEG, PNG, GIF, BMP, TIFF, WebP, PPM/PGM/PBM, AVIF, HEIC/HEIF"."""
    return ", ".join(f.label for f in READABLE)
