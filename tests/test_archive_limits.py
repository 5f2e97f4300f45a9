"""Zip bombs and killed extractions: an archive may expand only so far beyond its own size (checked on the
member headers and again while writing), and the partial folders of killed extractions are cleaned up."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.data.hashing import sha256_file
from picsift.ingest import archives
from picsift.ingest.archives import MIN_ALLOWED_BYTES, STALE_PARTIAL_S, allowed_bytes, extract

MiB = 1024**2


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(buf, "PNG")
    return buf.getvalue()


def bomb_zip(path: Path, zeros: int) -> Path:
    """Real images plus one member of `zeros` zero bytes, deflated (about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/a/1.png", png(1))
        zf.writestr("data/b/2.png", png(2))
        zf.writestr("data/a/filler.png", bytes(zeros))
    return path


def bomb_tar(path: Path, members: int, each: int) -> Path:
    """A tar.gz of `members` members of `each` zero bytes: the sizes are known only while reading the stream."""
    with tarfile.open(path, "w:gz") as tf:
        for i in range(members):
            info = tarfile.TarInfo(f"data/a/{i}.png")
            info.size = each
            tf.addfile(info, io.BytesIO(bytes(each)))
    return path


def leftovers(into: Path) -> list[str]:
    return sorted(p.name for p in into.iterdir()) if into.exists() else []


def test_the_allowance_is_tied_to_the_archive_size() -> None:
    assert allowed_bytes(1 * MiB) == 100 * MiB  # 1 MB may expand to 100 MB, not to 1 GiB
    assert allowed_bytes(1000) == MIN_ALLOWED_BYTES  # tiny archives keep a floor
    assert allowed_bytes(10**15) == archives.MAX_EXTRACTED_BYTES  # and an absolute cap
    assert allowed_bytes(1 * MiB, 2000) == 2000 * MiB


def test_a_zip_declaring_a_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = bomb_zip(tmp_path / "bomb.zip", 40 * MiB)
    size = archive.stat().st_size
    assert size < 200_000  # 40 MiB deflated: far beyond 100:1
    into = tmp_path / "ws" / "files" / "archives"
    with pytest.raises(archives.DatasetError) as e:
        extract(archive, into)
    message = str(e.value)
    assert f"its members declare {40 * MiB + len(png(1)) + len(png(2))} bytes from {size}" in message
    assert "--max-expansion" in message and "nothing imported" in message
    assert leftovers(into) == []  # no partial folder, no extracted folder, no marker
    # The user may raise the limit for a genuine archive.
    done = extract(archive, into, max_ratio=2000)
    assert (done.folder / "data" / "a" / "filler.png").stat().st_size == 40 * MiB


def test_headers_that_lie_are_caught_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    into = tmp_path / "archives"
    # tar.gz: the member sizes arrive with the stream; the expansion stops at the budget.
    tar = bomb_tar(tmp_path / "bomb.tgz", members=24, each=1 * MiB)
    with pytest.raises(archives.DatasetError, match="refused as a possible zip bomb"):
        extract(tar, into)
    assert leftovers(into) == []
    # zip: with the header check fooled (a central directory that understates), the copy itself stops.
    monkeypatch.setattr(archives._Budget, "check_declared", lambda self, total: None)
    zipped = bomb_zip(tmp_path / "bomb.zip", 40 * MiB)
    with pytest.raises(archives.DatasetError, match="it expands to more than"):
        extract(zipped, into)
    assert leftovers(into) == []


def test_partial_folders_of_killed_extractions_are_removed_next_time(tmp_path: Path) -> None:
    into = tmp_path / "archives"
    into.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed = into / f"{'a' * 64}.partial-{dead.pid}"
        old = into / f"{'b' * 64}.partial-{alive.pid}"
        running = into / f"{'c' * 64}.partial-{alive.pid}"
        for folder in (killed, old, running):
            (folder / "data").mkdir(parents=True)
            (folder / "data" / "1.png").write_bytes(png(1))
        long_ago = time.time() - STALE_PARTIAL_S - 60
        os.utime(old, (long_ago, long_ago))
        archive = tmp_path / "ok.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("x/1.png", png(3))
        done = extract(archive, into)
        sha = sha256_file(archive)
        assert leftovers(into) == sorted([running.name, sha, f"{sha}.extracted.json"])
        assert done.folder == into / sha
    finally:
        alive.kill()
        alive.wait()


def test_import_of_a_bomb_exits_2_with_one_line(tmp_path: Path) -> None:
    archive = bomb_zip(tmp_path / "bomb.zip", 40 * MiB)
    result = CliRunner().invoke(build_app(), ["import", str(archive), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "possible zip bomb" in lines[0] and "--max-expansion" in lines[0], lines
    assert leftovers(tmp_path / "ws" / "files" / "archives") == []
    ok = CliRunner().invoke(
        build_app(), ["import", str(archive), "--workspace", str(tmp_path / "ws"), "--max-expansion", "5000"]
    )
    assert ok.exit_code == 0, ok.output
