"""A full disk and a read-only workspace, on a real small file system (tmpfs): every write path answers one clear
line (CLI exit 2, HTTP 507) naming the file, and nothing already stored is lost. Plus the recognition itself."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift.atomic import atomic_path
from picsift.cli import build_app
from picsift.errors import DatasetError, DiskError, disk_error
from picsift.store import Workspace
from support.faults import fill, remount, small_disk
from support.images import write_digits
from support.label import app_client


def picsift(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.stderr.strip().splitlines()


def rows(ws_root: Path) -> list[tuple]:
    con = sqlite3.connect(ws_root / "catalog.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        return con.execute("SELECT id, path, label, split, excluded FROM images ORDER BY id").fetchall()
    finally:
        con.close()


def test_disk_error_recognises_full_and_read_only_writes(tmp_path: Path) -> None:
    full = disk_error(OSError(errno.ENOSPC, "No space left on device", "/data/x.bin"))
    assert isinstance(full, DiskError) and str(full).startswith("cannot write /data/x.bin: the disk is full")
    ro = disk_error(OSError(errno.EROFS, "Read-only file system", "/data/x.bin"))
    assert ro is not None and "read-only" in str(ro) and "/data/x.bin" in str(ro)
    sqlite_full = disk_error(sqlite3.OperationalError("database or disk is full"), tmp_path / "c.sqlite")
    assert sqlite_full is not None and "disk is full" in str(sqlite_full) and "c.sqlite" in str(sqlite_full)
    rust = disk_error(RuntimeError("I/O error: No space left on device (os error 28)"))
    assert rust is not None and "disk is full" in str(rust)
    # Other failures are not storage errors, on a disk with room: they keep their own type and message.
    assert disk_error(OSError(errno.ENOENT, "No such file or directory", "x"), tmp_path) is None
    assert disk_error(ValueError("bad value"), tmp_path / "f") is None
    assert disk_error(DatasetError("bad csv")) is None


def test_full_disk_cli_writes_fail_in_one_line_and_keep_the_catalog(tmp_path: Path) -> None:
    first, second = write_digits(tmp_path / "a", per_class=4), write_digits(tmp_path / "b", per_class=6, seed=1)
    with small_disk(tmp_path / "disk") as disk:
        ws = disk / "ws"
        assert picsift("import", str(first), "-w", str(ws))[0] == 0
        before = rows(ws)
        labels = tmp_path / "labels.csv"
        labels.write_text("path,label\n" + "".join(f"{r[1]},other\n" for r in before))
        filler = fill(disk)
        for args in (
            ("import", str(second), "-w", str(ws)),
            ("import-labels", str(labels), "--overwrite", "-w", str(ws)),
            ("export-clean", str(disk / "clean"), "-w", str(ws)),
        ):
            code, err = picsift(*args)
            assert code == 2, (args, err)
            assert len(err) == 1 and err[0].startswith("error: cannot write ") and "the disk is full" in err[0], err
        assert not (disk / "clean").exists() and not list(disk.glob(".clean.partial-*"))
        filler.unlink()
        assert rows(ws) == before
        assert picsift("import-labels", str(labels), "--overwrite", "-w", str(ws))[0] == 0
        assert {r[2] for r in rows(ws)} == {"other"}
        assert picsift("export-clean", str(disk / "clean"), "-w", str(ws))[0] == 0
        assert len(list((disk / "clean" / "other").iterdir())) == len(before)


def test_read_only_workspace_cli_writes_fail_in_one_line_and_reads_still_work(tmp_path: Path) -> None:
    first, second = write_digits(tmp_path / "a", per_class=4), write_digits(tmp_path / "b", per_class=6, seed=1)
    with small_disk(tmp_path / "disk") as disk:
        ws = disk / "ws"
        assert picsift("import", str(first), "-w", str(ws))[0] == 0
        before = rows(ws)
        remount(disk, "ro")
        try:
            assert picsift("status", "-w", str(ws))[0] == 0  # reading needs no write (opened read-only)
            code, err = picsift("import", str(second), "-w", str(ws))
            assert code == 2 and len(err) == 1 and "the file system is read-only" in err[0], err
            assert str(ws / "catalog.sqlite") in err[0]
            code, err = picsift("export-clean", str(disk / "clean"), "-w", str(ws))
            assert code == 2 and len(err) == 1 and "read-only" in err[0], err
        finally:
            remount(disk, "rw")
        assert rows(ws) == before
        assert picsift("import", str(second), "-w", str(ws))[0] == 0
        assert len(rows(ws)) == len(before) + 18


def test_label_app_answers_507_on_a_full_disk_and_keeps_acknowledged_labels(tmp_path: Path) -> None:
    folder = write_digits(tmp_path / "digits", per_class=4)
    with small_disk(tmp_path / "disk") as disk:
        assert picsift("import", str(folder), "-w", str(disk / "ws"))[0] == 0
        ws = Workspace.open(disk / "ws")
        try:
            with app_client(ws) as c:
                ids = [x["id"] for x in c.get("/api/images").json()["items"]]
                assert c.post("/api/labels", json={"image_ids": ids[:2], "label": "kept"}).status_code == 200
                acknowledged = rows(ws.root)
                filler = fill(disk)
                refused = c.post("/api/labels", json={"image_ids": ids[2:], "label": "lost"})
                assert refused.status_code == 507, refused.text
                assert refused.json()["error"] == "DiskError"
                assert "the disk is full" in refused.json()["detail"] and "catalog.sqlite" in refused.json()["detail"]
                filler.unlink()
                assert rows(ws.root) == acknowledged
                assert [r[2] for r in acknowledged[:2]] == ["kept", "kept"]
                assert c.post("/api/labels", json={"image_ids": ids[2:3], "label": "later"}).status_code == 200
        finally:
            ws.close()


def test_label_app_answers_507_on_a_read_only_workspace(tmp_path: Path) -> None:
    folder = write_digits(tmp_path / "digits", per_class=4)
    with small_disk(tmp_path / "disk") as disk:
        assert picsift("import", str(folder), "-w", str(disk / "ws"))[0] == 0
        ws = Workspace.open(disk / "ws")
        remount(disk, "ro")
        try:
            with app_client(ws) as c:
                r = c.post("/api/labels", json={"image_ids": [1], "label": "x"})
                assert r.status_code == 507 and "read-only" in r.json()["detail"], r.text
                # Reading goes on: the thumbnail cannot be cached, so it is served uncached.
                thumb = c.get("/api/images/1/thumb")
                assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
                assert not (ws.cache_dir / "thumbs").exists()
        finally:
            ws.close()
            remount(disk, "rw")


def test_torch_save_on_a_full_disk_is_a_disk_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with small_disk(tmp_path / "disk", size_kib=1024) as disk:
        target = disk / "state.pt"
        torch.save({"w": torch.zeros(10)}, target)
        old = target.read_bytes()
        # torch reports ENOSPC as "unexpected pos": recognised all the same
        full = pytest.raises(DiskError, match=r"cannot write .*state\.pt: the disk is full")
        with full, atomic_path(target) as tmp:
            torch.save({"w": torch.zeros(1_000_000)}, tmp)
        assert target.read_bytes() == old
        assert [p.name for p in disk.iterdir()] == ["state.pt"]
