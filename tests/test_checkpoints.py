"""Training checkpoints: written atomically (a failed or killed write keeps the previous one), checksummed,
verified before `--resume` (one clear line, exit 2, for a damaged one), and `picsift runs` lists runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from picsift.atomic import temp_name
from picsift.cli import build_app
from picsift.data.hashing import sha256_file
from picsift.errors import CheckpointError
from picsift.train import checkpoints
from picsift.train.checkpoints import load_checkpoint, save_checkpoint, sidecar_path, verify_checkpoint
from support.deploy import make_workspace, train_run

REPO = Path(__file__).resolve().parents[1]


def state(epoch: int, n: int = 20_000) -> dict[str, object]:
    return {"model": {"w": torch.full((n,), float(epoch))}, "epoch": epoch}


def test_save_records_the_checksum_and_load_checks_it(tmp_path: Path) -> None:
    path = tmp_path / "run-a" / "checkpoint.pt"
    path.parent.mkdir()
    digest = save_checkpoint(state(1), path)
    record = json.loads(sidecar_path(path).read_text())
    assert record["sha256"] == digest and record["bytes"] == path.stat().st_size and record["epoch"] == 1
    save_checkpoint(state(2), path)
    record2 = json.loads(sidecar_path(path).read_text())
    assert record2["previous"]["sha256"] == digest  # the sidecar vouches for the old file until the rename
    assert load_checkpoint(path)["epoch"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt", "checkpoint.pt.json"]


def test_a_write_failing_midway_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run-b" / "checkpoint.pt"
    path.parent.mkdir()
    save_checkpoint(state(1), path)
    before, sidecar_before = path.read_bytes(), sidecar_path(path).read_text()
    real_write = checkpoints._HashingWriter.write

    def failing_write(self: checkpoints._HashingWriter, data: bytes) -> int:
        if self.size > 10_000:  # the temporary file holds a part of the new checkpoint by now
            assert temp_name(path).stat().st_size > 0
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(checkpoints._HashingWriter, "write", failing_write)
    with pytest.raises((OSError, RuntimeError)):  # torch may wrap the disk's error in its own
        save_checkpoint(state(2), path)
    assert path.read_bytes() == before and sidecar_path(path).read_text() == sidecar_before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt", "checkpoint.pt.json"]


def test_a_kill_between_sidecar_and_rename_leaves_a_verifiable_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run-c" / "checkpoint.pt"
    path.parent.mkdir()
    save_checkpoint(state(1), path)

    real_replace = os.replace

    def no_rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == path:
            raise KeyboardInterrupt  # stands for the process dying at this exact point
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state(2), path)
    monkeypatch.undo()
    assert json.loads(sidecar_path(path).read_text())["epoch"] == 2  # the sidecar already speaks of epoch 2 ...
    assert load_checkpoint(path)["epoch"] == 1  # ... and still vouches for the complete epoch-1 file


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "run-d" / "checkpoint.pt"
    path.parent.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = path.with_name(f".checkpoint.pt.{dead.pid}.1.tmp")
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(state(1), path)
    assert not stale.exists()


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: p.write_bytes(b""), "(0 bytes)"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "(checksum mismatch: sha256 "),
        (lambda p: p.write_bytes(p.read_bytes()[:-40] + bytes(40)), "(checksum mismatch: sha256 "),
    ],
)
def test_damaged_checkpoints_are_refused_in_one_line(tmp_path: Path, damage, why: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "20260101-000000-fastcnn" / "checkpoint.pt"
    path.parent.mkdir()
    save_checkpoint(state(1), path)
    damage(path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert message.startswith(f"checkpoint.pt in run 20260101-000000-fastcnn is damaged {why}") and "\n" not in message


def test_without_a_sidecar_a_cut_checkpoint_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "old-run" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save(state(1), path)  # as older picsift versions wrote it: no sidecar
    verify_checkpoint(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt in run old-run is damaged \(unreadable, 5000 bytes"):
        load_checkpoint(path)


def test_a_real_sigkill_during_checkpoint_writes_never_loses_the_last_complete_one(tmp_path: Path) -> None:
    """A process saving ~4 MB checkpoints in a loop, killed with SIGKILL mid-stream: the checkpoint it leaves
    verifies, loads, and is no older than the last save it acknowledged."""
    path = tmp_path / "run-kill" / "checkpoint.pt"
    path.parent.mkdir()
    code = (
        "import sys, torch\n"
        "from picsift.train.checkpoints import save_checkpoint\n"
        "path = sys.argv[1]\n"
        "for epoch in range(10_000):\n"
        "    save_checkpoint({'model': {'w': torch.full((1_000_000,), float(epoch))}, 'epoch': epoch}, path)\n"
        "    print(epoch, flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 3:
            break
    time.sleep(0.013)  # somewhere inside a later write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    loaded = load_checkpoint(path)
    assert loaded["epoch"] >= acknowledged
    assert float(loaded["model"]["w"][0]) == loaded["epoch"]


# ---- through the command line -----------------------------------------------------------------------------------


def test_resume_from_a_damaged_checkpoint_exits_2_with_one_line_and_runs_lists_it(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=8)
    run_dir = train_run(ws)
    ckpt = run_dir / "checkpoint.pt"
    assert json.loads(sidecar_path(ckpt).read_text())["sha256"] == sha256_file(ckpt)
    runner = CliRunner()
    app = build_app()
    # A run stopped before it finished: only its checkpoint and metrics remain.
    failed = run_dir.with_name(run_dir.name + "-failed")
    failed.mkdir()
    for name in ("checkpoint.pt", "checkpoint.pt.json", "config.json", "metrics.jsonl"):
        (failed / name).write_bytes((run_dir / name).read_bytes())
    listed = runner.invoke(app, ["runs", "--workspace", str(ws), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["run_id"]: r for r in json.loads(listed.stdout)["runs"]}
    assert rows[run_dir.name]["status"] == "finished" and rows[run_dir.name]["model"] == "fastcnn"
    assert rows[failed.name]["status"] == "failed, resumable" and rows[failed.name]["epochs"] == 1
    assert rows[run_dir.name]["val_acc"] == json.loads((run_dir / "run.json").read_text())["best_val_acc"]

    ckpt.write_bytes(b"")
    result = runner.invoke(app, ["train", "--workspace", str(ws), "--model", "fastcnn", "--epochs", "2",
                                 "--resume", run_dir.name])  # fmt: skip
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"checkpoint.pt in run {run_dir.name} is damaged (0 bytes)" in lines[0], lines
    (failed / "checkpoint.pt").write_bytes(b"")
    table = runner.invoke(app, ["runs", "--workspace", str(ws)])
    assert "failed, damaged checkpoint" in table.stdout and "finished" in table.stdout


def test_history_cut_short_by_a_kill_reads_up_to_its_last_whole_line(tmp_path: Path) -> None:
    from picsift.errors import RunCorruptError
    from picsift.runs import RunFolder

    run = RunFolder(tmp_path)
    run.history_path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert run.read_history() == [{"epoch": 1}, {"epoch": 2}]
    run.history_path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(RunCorruptError, match="not JSON"):
        run.read_history()
