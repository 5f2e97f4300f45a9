"""A corrupt-image corpus (tests/support/corrupt.py, generated here, never stored) through a real `picsift import`,
`picsift predict`, the server's predict and feedback uploads, and archives that are bombs or hold unsafe members:
no crash and no traceback; each file is read, or recorded unreadable or refused with a specific reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.data.images import load_rgb, probe
from picsift.errors import ImageDecodeError
from picsift.store import Workspace
from support.corrupt import UNSAFE_NAMES, check_import, make_archives, make_corpus, specific

runner = CliRunner()


def test_every_corrupt_file_is_recorded_with_a_specific_reason(tmp_path: Path) -> None:
    samples = make_corpus(tmp_path / "corpus", flips=12)
    command = [sys.executable, "-m", "picsift", "import", str(tmp_path / "corpus"), "--workspace", str(tmp_path / "ws")]
    res = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no traceback, and none of Pillow's "UserWarning: Corrupt EXIF data" lines
    result = json.loads(res.stdout)
    assert check_import(samples, result) == []
    ws = Workspace.open(tmp_path / "ws")
    rows = ws.catalog.images(readable=None)
    ws.close()
    assert len(rows) == len(samples)  # every file has its row: nothing lost
    assert sum(not r.readable for r in rows) == result["unreadable"] >= sum(s.expect == "unreadable" for s in samples)


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_a_truncated_png_says_it_is_a_png(tmp_path: Path) -> None:
    samples = {s.name: s for s in make_corpus(tmp_path)}
    with pytest.raises(ImageDecodeError, match="the data starts like PNG but its header cannot be read"):
        probe(tmp_path / "png-cut8.png")  # the signature and nothing else: was "not an image (unrecognised format)"
    with pytest.raises(ImageDecodeError, match="the data starts like JPEG but"):
        probe(tmp_path / "jpg-cut20.jpg")
    assert {"png-cut8.png", "jpg-cut20.jpg"} <= set(samples)
    with pytest.raises(ImageDecodeError, match="decompression bomb refused"):
        load_rgb(tmp_path / "png-absurd.png")
    with pytest.raises(ImageDecodeError, match="decompression bomb refused"):
        load_rgb(tmp_path / "png-bomb.png")
    assert load_rgb(tmp_path / "polyglot-jpeg-zip.jpg").size == (16, 12)


def test_text_that_starts_with_p_is_not_a_damaged_netpbm_image(tmp_path: Path) -> None:
    """Pillow's Netpbm check accepts "P" and several letters, so a text file starting "PyTorch" read as a PPM
    with a damaged header (HTTP 422) instead of not an image (415)."""
    from picsift.data.formats import PNM, signature_format

    for text in (b"PyTorch provenance\n", b"Pfeffer und Salz", b"P9 is no magic number"):
        assert signature_format(text) is None
        path = tmp_path / "notes.ppm"
        path.write_bytes(text)
        with pytest.raises(ImageDecodeError) as e:
            probe(path)
        assert "starts like" not in str(e.value)
    for magic in (b"P1\n", b"P6 ", b"P5\t", b"Pf\r\n"):
        assert signature_format(magic + b"2 2\n255\n") is PNM


@pytest.mark.slow
def test_predict_server_and_feedback_refuse_corrupt_files_with_4xx(tmp_path: Path) -> None:
    from picsift.deploy.export import export
    from picsift.deploy.server import ServerSettings, create_app
    from support.deploy import LiveServer, make_workspace, train_run

    samples = make_corpus(tmp_path / "corpus", flips=1)
    ws_root = make_workspace(tmp_path / "train", per_class=8)
    run_dir = train_run(ws_root, "fastcnn")
    pred = runner.invoke(build_app(), ["predict", str(tmp_path / "corpus"), "--run", str(run_dir), "--json"])
    assert pred.exit_code == 0 and "Traceback" not in pred.output, pred.output
    rows = {Path(r["path"]).name: r for r in json.loads(pred.stdout)["predictions"]}
    assert sorted(rows) == sorted(s.name for s in samples)
    for s in samples:
        r = rows[s.name]
        assert ("error" in r) == (s.expect == "unreadable") or s.expect == "either", (s, r)
        assert "error" not in r or specific(r["error"]), r

    bundle = export(run_dir, tmp_path / "bundle")
    with (
        LiveServer(create_app(ServerSettings(bundle=bundle, workspace=ws_root))) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as c,
    ):
        for s in samples:
            data = (tmp_path / "corpus" / s.name).read_bytes()
            for path, form in (("/v1/predict", {}), ("/v1/feedback", {"label": "1"})):
                r = c.post(path, files={"file": (s.name, data)}, data=form)
                assert r.status_code in (200, 201, 400, 413, 415, 422), (s.name, path, r.status_code, r.text)
                if r.status_code >= 400:
                    assert s.expect != "readable", (s.name, path, r.text)
                    body = r.json()
                    assert body["error"] and specific(body["detail"]), (s.name, body)
                else:
                    assert s.expect != "unreadable", (s.name, path, r.text)


def test_archive_bombs_are_refused_and_unsafe_members_reported(tmp_path: Path) -> None:
    app = build_app()
    for path, expect in make_archives(tmp_path / "archives"):
        ws = tmp_path / f"ws-{path.name}"
        res = runner.invoke(app, ["import", str(path), "--workspace", str(ws), "--json"])
        assert "Traceback" not in res.output
        if expect == "refused":
            assert res.exit_code == 2, res.output
            assert "possible zip bomb, nothing imported" in res.output
            assert not any((ws / "files" / "archives").glob("*/*")) if (ws / "files").exists() else True
            continue
        assert res.exit_code == 0, res.output
        result = json.loads(res.stdout)
        assert result["added"] == 1  # cls/good.png
        reasons = {s["path"].split("!", 1)[-1]: s["reason"] for s in result["skipped_files"]}
        for name in UNSAFE_NAMES:
            assert "unsafe path outside the archive folder" in reasons[name], (name, reasons)
        assert "link, not extracted" in reasons["cls/link.png"], reasons
        if path.suffix == ".tar":
            assert "special file, not extracted" in reasons["cls/dev.png"], reasons
        assert not (tmp_path / "evil.png").exists() and not Path("/abs/evil.png").exists()


def test_a_decompression_bomb_is_refused_with_picsifts_limit(tmp_path: Path) -> None:
    from picsift.data.images import MAX_PIXELS
    from support.corrupt import absurd_png

    (tmp_path / "absurd.png").write_bytes(absurd_png(100_000, 100_000))
    with pytest.raises(ImageDecodeError) as e:
        load_rgb(tmp_path / "absurd.png")
    assert str(e.value) == f"decompression bomb refused: 10,000,000,000 pixels; picsift decodes at most {MAX_PIXELS:,}"
