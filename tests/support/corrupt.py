"""A corrupt-image corpus, generated (never stored): every readable format intact, as one pixel, cut short at
several points, with bit-flipped headers and with absurd declared sizes; zero-byte files, a decompression bomb,
a polyglot (a zip appended to a JPEG), text under an image name; and archives: zip and tar bombs, members with
absolute and `..` names and links.

`make_corpus(folder)` writes the images and returns what each file is (`Sample`); `make_archives(folder)` writes
the archives. `run_corpus_bench` (bench/fuzz_bench.py) imports and predicts the corpus and counts outcomes.
"""

from __future__ import annotations

import io
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from picsift.data.formats import AVIF_AVAILABLE, HEIF_AVAILABLE

# (Pillow format, suffix, mode) of every readable format picsift lists in picsift.data.formats.
FORMATS: list[tuple[str, str, str]] = [
    ("JPEG", ".jpg", "RGB"),
    ("PNG", ".png", "RGBA"),
    ("GIF", ".gif", "P"),
    ("BMP", ".bmp", "RGB"),
    ("TIFF", ".tif", "RGB"),
    ("WEBP", ".webp", "RGB"),
    ("PPM", ".ppm", "RGB"),
    ("PPM", ".pgm", "L"),
    ("PPM", ".pbm", "1"),
]
if AVIF_AVAILABLE:
    FORMATS.append(("AVIF", ".avif", "RGB"))
if HEIF_AVAILABLE:
    FORMATS.append(("HEIF", ".heic", "RGB"))

BOMB_REASON = "decompression bomb"


@dataclass(frozen=True)
class Sample:
    """One corpus file and what it must become: "readable", "unreadable" (a reason naming `why`), or "either"
    (a damaged file some decoders still read whole; when unreadable, any specific reason)."""

    name: str
    expect: str  # readable | unreadable | either
    why: str = ""  # a word the unreadable reason must contain ("" for any)


def encode(fmt: str, mode: str, size: tuple[int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    img = img.convert("RGBA") if mode == "RGBA" else img.convert(mode) if mode != "P" else img.quantize(16)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def absurd_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose IHDR (valid CRC) declares `width` x `height` RGB pixels, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def absurd_gif() -> bytes:
    """A GIF whose screen and image declare 65535 x 65535 pixels."""
    head = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    desc = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00;"
    return head + desc


def absurd_bmp() -> bytes:
    """A BMP whose header declares 60000 x 60000 24-bit pixels, with none of them."""
    info = struct.pack("<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 14 + 40) + info


def bomb_png() -> bytes:
    """A real 1-bit PNG of 9500 x 9500 pixels (90 MP, over picsift's 89 MP cap) that compresses to a few KB."""
    buf = io.BytesIO()
    Image.new("1", (9500, 9500)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _flip(data: bytes, rng: random.Random, span: int = 48) -> bytes:
    out = bytearray(data)
    for _ in range(3):
        i = rng.randrange(min(span, len(out)))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def make_corpus(folder: Path, *, flips: int = 3, seed: int = 0) -> list[Sample]:
    """Write the image corpus into `folder` (flat); returns every file's expected outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    samples: list[Sample] = []

    def put(name: str, data: bytes, expect: str, why: str = "") -> None:
        (folder / name).write_bytes(data)
        samples.append(Sample(name, expect, why))

    for i, (fmt, suffix, mode) in enumerate(FORMATS):
        stem = suffix[1:]
        good = encode(fmt, mode, (16, 12), seed=i)
        put(f"{stem}-ok{suffix}", good, "readable")
        put(f"{stem}-1px{suffix}", encode(fmt, mode, (1, 1), seed=i), "readable")
        put(f"{stem}-empty{suffix}", b"", "unreadable", "empty")
        for cut in sorted({1, 8, 20, len(good) // 2}):
            if cut < len(good):
                put(f"{stem}-cut{cut}{suffix}", good[:cut], "either" if cut > 20 else "unreadable")
        put(f"{stem}-cutlast{suffix}", good[:-1], "either")
        for k in range(flips):
            put(f"{stem}-flip{k}{suffix}", _flip(good, rng), "either")
        put(f"{stem}-text{suffix}", b"this is not an image\n", "unreadable", "not an image")
    put("png-absurd.png", absurd_png(), "unreadable", BOMB_REASON)
    put("png-absurd-wide.png", absurd_png(2**31 - 1, 1), "unreadable")
    put("gif-absurd.gif", absurd_gif(), "unreadable", BOMB_REASON)
    put("bmp-absurd.bmp", absurd_bmp(), "unreadable")
    put("ppm-absurd.ppm", b"P6\n100000 100000\n255\n" + b"\0" * 64, "unreadable", BOMB_REASON)
    put("png-bomb.png", bomb_png(), "unreadable", BOMB_REASON)
    jpeg = encode("JPEG", "RGB", (16, 12), seed=99)
    put("polyglot-jpeg-zip.jpg", jpeg + _zip_bytes({"inner.txt": b"x" * 100}), "readable")
    put("zip-named.jpg", _zip_bytes({"a.jpg": jpeg}), "unreadable", "not an image")
    return samples


def zip_bomb(path: Path, megabytes: int = 64) -> Path:
    """A zip of one member of `megabytes` MB of zeros (about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, zf.open("zeros.png", "w") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(megabytes):
            f.write(chunk)
    return path


def tar_bomb(path: Path, megabytes: int = 64) -> Path:
    """A .tar.gz of one member of `megabytes` MB of zeros."""

    class Zeros(io.RawIOBase):
        def __init__(self, n: int) -> None:
            self.left = n

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), self.left)
            b[:n] = b"\0" * n
            self.left -= n
            return n

    with tarfile.open(path, "w:gz", compresslevel=9) as tf:
        info = tarfile.TarInfo("zeros.png")
        info.size = megabytes << 20
        tf.addfile(info, io.BufferedReader(Zeros(info.size)))
    return path


UNSAFE_NAMES = ["/abs/evil.png", "../evil.png", "ok/../../evil.png", "C:/evil.png", "..\\win-evil.png"]


def unsafe_zip(path: Path, image: bytes) -> Path:
    """A zip with one good image under `cls/` and members of absolute and `..` names (refused) and a link."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cls/good.png", image)
        for name in UNSAFE_NAMES:
            zf.writestr(name, image)
        link = zipfile.ZipInfo("cls/link.png")
        link.external_attr = (0o120777 << 16) | 0x20
        zf.writestr(link, "/etc/passwd")
    return path


def unsafe_tar(path: Path, image: bytes) -> Path:
    """A tar with one good image under `cls/`, members of absolute and `..` names, a symlink and a device."""
    with tarfile.open(path, "w") as tf:
        for name in ["cls/good.png", *UNSAFE_NAMES]:
            info = tarfile.TarInfo(name)
            info.size = len(image)
            tf.addfile(info, io.BytesIO(image))
        link = tarfile.TarInfo("cls/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
        dev = tarfile.TarInfo("cls/dev.png")
        dev.type = tarfile.CHRTYPE
        tf.addfile(dev)
    return path


def check_import(samples: list[Sample], result: dict[str, Any]) -> list[str]:
    """What is wrong with an import's JSON result (`picsift import --json`) of the corpus: a file not counted,
    an unreadable file without a specific reason, a file readable or refused against its expectation."""
    reasons = {Path(u["path"]).name: u["reason"] for u in result["unreadable_files"]}
    problems = []
    if result["added"] + result["duplicates"] + result["unreadable"] != len(samples):
        problems.append(f"{len(samples)} files, counted {result['added']} + {result['duplicates']} + "
                        f"{result['unreadable']} unreadable")  # fmt: skip
    for s in samples:
        why = reasons.get(s.name)
        if s.expect == "readable" and why is not None:
            problems.append(f"{s.name}: expected readable, unreadable: {why}")
        elif s.expect == "unreadable" and why is None:
            problems.append(f"{s.name}: expected unreadable, imported as readable")
        elif why is not None and (s.why not in why or not specific(why)):
            problems.append(f"{s.name}: reason {why!r} (expected one naming {s.why!r})")
    return problems


def specific(reason: str) -> bool:
    """A reason a person can act on: says what is wrong, not only that something is."""
    lowered = reason.lower()
    return len(reason) > 12 and "unknown" not in lowered and "traceback" not in lowered


def run_corpus_bench(say: Callable[..., None]) -> dict[str, Any]:
    """Import and predict the corpus (and the archives) for bench/fuzz_bench.py; returns the counts."""
    import json
    import tempfile

    from typer.testing import CliRunner

    from picsift.cli import build_app
    from support.deploy import make_workspace, train_run

    app, runner = build_app(), CliRunner()
    with tempfile.TemporaryDirectory(prefix="picsift-corpus-") as tmp:
        root = Path(tmp)
        samples = make_corpus(root / "corpus", flips=20)
        res = runner.invoke(app, ["import", str(root / "corpus"), "--workspace", str(root / "ws"), "--json"])
        imported = json.loads(res.stdout) if res.exit_code == 0 else {}
        problems = check_import(samples, imported) if imported else [f"import exit {res.exit_code}: {res.output}"]
        ws_root = make_workspace(root / "train", per_class=8)
        run_dir = train_run(ws_root, "fastcnn")
        pred = runner.invoke(app, ["predict", str(root / "corpus"), "--run", str(run_dir), "--json"])
        rows = json.loads(pred.stdout)["predictions"] if pred.exit_code == 0 else []
        errors = sum("error" in r for r in rows)
        archives = make_archives(root / "archives")
        archive_rows = []
        for path, expect in archives:
            r = runner.invoke(app, ["import", str(path), "--workspace", str(root / "ws-a"), "--json"])
            archive_rows.append({"archive": path.name, "exit_code": r.exit_code, "expect": expect})
    out = {
        "files": len(samples),
        "readable": imported.get("added", 0) + imported.get("duplicates", 0),
        "unreadable": imported.get("unreadable", 0),
        "import_problems": problems,
        "predict_exit_code": pred.exit_code,
        "predicted": len(rows) - errors,
        "predict_errors": errors,
        "predict_crash": pred.exception is not None and not isinstance(pred.exception, SystemExit),
        "archives": archive_rows,
    }
    say(
        f"corrupt images: {out['files']} files, {out['readable']} readable, {out['unreadable']} unreadable with "
        f"reasons, {len(problems)} problems; predict: {out['predicted']} predicted, {errors} errors, "
        f"crash {out['predict_crash']}; archives: {archive_rows}"
    )
    for p in problems:
        say(f"    {p}")
    return out


def make_archives(folder: Path) -> list[tuple[Path, str]]:
    """The archive corpus: (path, "refused" for a bomb | "partial" for unsafe members beside a good image)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = encode("PNG", "RGB", (16, 12), seed=7)
    return [
        (zip_bomb(folder / "bomb.zip"), "refused"),
        (tar_bomb(folder / "bomb.tar.gz"), "refused"),
        (unsafe_zip(folder / "unsafe.zip", image), "partial"),
        (unsafe_tar(folder / "unsafe.tar", image), "partial"),
    ]
