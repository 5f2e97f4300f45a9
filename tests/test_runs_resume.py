"""Runs from the command line: `train --resume RUN` continues the run with its own settings in its own folder,
`--run` names a run (never any folder), and Ctrl+C says in one line what it left."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.runs import RunFolder
from support.distributed import process_env
from support.images import write_digits


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "picsift", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=process_env(),
    )


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    return out, err


@pytest.fixture
def digits_ws(tmp_path: Path) -> Path:
    images = write_digits(tmp_path / "digits", per_class=12, classes=3)
    ws = tmp_path / "ws"
    done = CliRunner().invoke(build_app(), ["import", str(images), "-w", str(ws)])
    assert done.exit_code == 0, done.output
    return ws


def _runs(ws: Path) -> dict[str, dict[str, object]]:
    listed = CliRunner().invoke(build_app(), ["runs", "-w", str(ws), "--json"])
    assert listed.exit_code == 0, listed.output
    return {r["run_id"]: r for r in json.loads(listed.stdout)["runs"]}


def test_ctrl_c_keeps_the_run_and_resume_alone_continues_it_in_its_own_folder(digits_ws: Path) -> None:
    ws = digits_ws
    proc = _cli("train", "-w", str(ws), "--model", "fastcnn", "--epochs", "30", "--seed", "1", "--device", "cpu",
                "--no-calibrate")  # fmt: skip
    # The checkpoint itself, not its sidecar: the sidecar is written just before the checkpoint is renamed into
    # place, and a run stopped in between has no checkpoint yet (its folder is removed, rightly).
    _wait_for(lambda: any((ws / "runs").glob("*/checkpoint.pt")), "the first checkpoint")
    out, err = _interrupt(proc)
    (run_dir,) = (ws / "runs").iterdir()
    run_id = run_dir.name
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    m = re.fullmatch(rf"interrupted: run {run_id} kept at epoch (\d+) \(resume with picsift train -w (.+) --resume "
                     rf"{run_id}\)", lines[0])  # fmt: skip
    assert m is not None and Path(m.group(2)) == ws.resolve(), lines[0]
    kept = int(m.group(1))
    assert _runs(ws)[run_id]["status"] == "failed, resumable"
    assert 1 <= kept < 30

    app = build_app()
    # An explicit setting that contradicts the run: refused in one line, the run left resumable.
    for flag, value, recorded in (("--model", "resnet18", "'fastcnn'"), ("--seed", "3", "1")):
        refused = CliRunner().invoke(app, ["train", "-w", str(ws), "--resume", run_id, flag, value])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.strip().splitlines() == [
            f"error: --resume {run_id}: {flag} {value if flag == '--seed' else repr(value)} contradicts the run's own "
            f"{recorded}; leave {flag} out to continue the run with its settings, or train a new run without --resume"
        ]
    assert _runs(ws)[run_id]["status"] == "failed, resumable"

    # --resume alone: the run's own model, seed and epochs, in its own folder.
    resumed = CliRunner().invoke(app, ["train", "-w", str(ws), "--resume", run_id, "--json"])
    assert resumed.exit_code == 0, resumed.output
    out = json.loads(resumed.stdout)
    assert (out["run_id"], out["model"], out["auto"]) == (run_id, "fastcnn", None)
    assert out["resumed"] == {"run": run_id, "from_epoch": kept, "same_folder": True}
    assert out["epochs"] == 30 - kept  # this session's epochs
    assert [p.name for p in (ws / "runs").iterdir()] == [run_id]  # no new folder
    run = RunFolder(run_dir)
    assert [row["epoch"] for row in run.read_history()] == list(range(1, 31))  # one history, no epoch twice
    config = run.read_config()["train"]
    assert (config["model"], config["seed"], config["epochs"], config["device"]) == ("fastcnn", 1, 30, "cpu")
    assert run.read_record()["epochs"] == 30 and run.read_record()["resumed"]["same_folder"] is True
    listed = _runs(ws)[run_id]
    assert (listed["status"], listed["epochs"]) == ("finished", 30)


def test_resume_of_a_finished_run_for_more_epochs_starts_a_new_run_and_leaves_it_as_it_was(digits_ws: Path) -> None:
    app = build_app()
    ws = digits_ws
    first = CliRunner().invoke(app, ["train", "-w", str(ws), "--model", "fastcnn", "--epochs", "2", "--device", "cpu",
                                     "--no-calibrate", "--json"])  # fmt: skip
    assert first.exit_code == 0, first.output
    run_id = json.loads(first.stdout)["run_id"]
    record = (ws / "runs" / run_id / "run.json").read_bytes()
    more = CliRunner().invoke(app, ["train", "-w", str(ws), "--resume", run_id, "--epochs", "3", "--json"])
    assert more.exit_code == 0, more.output
    out = json.loads(more.stdout)
    assert out["run_id"] != run_id and out["model"] == "fastcnn"
    assert out["resumed"] == {"run": run_id, "from_epoch": 2, "same_folder": False}
    assert (ws / "runs" / run_id / "run.json").read_bytes() == record
    assert {r: s["status"] for r, s in _runs(ws).items()} == {run_id: "finished", out["run_id"]: "finished"}


def test_run_option_is_a_run_of_the_workspace_or_a_run_folder_never_any_folder(
    digits_ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = digits_ws
    app = build_app()
    monkeypatch.chdir(ws)  # `..` is then a real folder: the one holding the workspace
    for command in (["evaluate"], ["export"], ["predict", str(tmp_path / "digits")], ["calibrate"],
                    ["check-drift", str(tmp_path / "digits")]):  # fmt: skip
        for run in ("..", "/etc", "nope"):
            result = CliRunner().invoke(app, [*command, "-w", str(ws), "--run", run])
            assert result.exit_code == 2, (command, run, result.output)
            assert result.stderr.strip().splitlines() == [
                f"error: no run {run!r} in workspace {ws.resolve()}; `picsift runs` lists its runs"
            ], (command, run)
    # A real run folder that is damaged keeps its own message, by id and by folder.
    damaged = ws / "runs" / "20260101-000000-fastcnn"
    damaged.mkdir()
    (damaged / "config.json").write_text("{}")
    for run in (damaged.name, str(damaged)):
        result = CliRunner().invoke(app, ["evaluate", "-w", str(ws), "--run", run])
        assert result.exit_code == 2
        assert "no run" not in result.stderr and damaged.name in result.stderr, result.stderr


@pytest.fixture
def stalling_url() -> Iterator[tuple[str, threading.Event]]:
    """A URL whose server accepts the connection and never answers; the event is set once a client connected."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    connected = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            connected.set()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/a.png", connected
    listener.close()
    for conn in held:
        conn.close()


def test_ctrl_c_during_import_says_the_catalog_was_left_as_it_was(
    digits_ws: Path, tmp_path: Path, stalling_url: tuple[str, threading.Event]
) -> None:
    url, connected = stalling_url
    listing = tmp_path / "urls.txt"
    listing.write_text(url + "\n")
    before = CliRunner().invoke(build_app(), ["status", "-w", str(digits_ws), "--json"])
    proc = _cli("import", str(listing), "-w", str(digits_ws))
    assert connected.wait(60), "the import never asked for the URL"
    out, err = _interrupt(proc)
    assert err.strip().splitlines() == [
        "interrupted: nothing was added to the catalog (an import is written in one transaction)"
    ]
    after = CliRunner().invoke(build_app(), ["status", "-w", str(digits_ws), "--json"])
    assert json.loads(after.stdout)["images"] == json.loads(before.stdout)["images"]
