"""Training in several processes (torchrun, gloo on the CPU): the same command, N processes, one run folder.

The processes are real: `python -m torch.distributed.run --nproc_per_node 2 -m picsift train ...`, or ranks started
by hand with the variables torchrun sets (to start only one of them, or to kill one mid-run).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from picsift.distributed import (
    SINGLE,
    Dist,
    device_for,
    from_env,
    is_relayed,
    per_process_batch,
    process_group,
    timeout_s,
)
from picsift.errors import ConfigError, DistributedError
from picsift.runs import RunFolder
from picsift.train.fast.prune import LossPruner
from picsift.train.shards import ShardedSampler, shard_order
from support.distributed import free_port, one_json, picsift, start_rank, torchrun, wait_for
from support.images import write_digits
from support.train import digits_data

# ---- the parts, in one process ---------------------------------------------------------------------------------


def test_shards_are_disjoint_equal_and_cover_the_epoch() -> None:
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    shards = [shard_order(order, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 11 // 3 each; the last 2 of this order sit the epoch out
    together = torch.cat(shards)
    assert len(set(together.tolist())) == 9 and set(together.tolist()) == set(order[:9].tolist())
    assert torch.equal(shard_order(order, 0, 1), order)
    # A seeded sampler drawn alike on every process: each takes its share of the same draw.
    draws = [list(ShardedSampler(_seeded_sampler(), r, 2)) for r in range(2)]
    assert len(draws[0]) == len(draws[1]) == 5 == len(ShardedSampler(_seeded_sampler(), 0, 2))
    whole = list(_seeded_sampler())
    assert draws[0] == whole[0:10:2] and draws[1] == whole[1:10:2]


def _seeded_sampler() -> torch.utils.data.Sampler[int]:
    weights = torch.tensor([1.0] * 6 + [5.0] * 4, dtype=torch.double)
    return torch.utils.data.WeightedRandomSampler(weights, 10, generator=torch.Generator().manual_seed(1))  # type: ignore[arg-type]


def test_batch_per_process_splits_a_global_batch() -> None:
    assert per_process_batch(64, 1) == 64
    assert per_process_batch(64, 2) == 32
    assert per_process_batch(65, 2) == 33  # together at least the global batch
    assert per_process_batch(3, 4) == 1


def test_environment_is_read_as_torchrun_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert from_env() is None  # one process: no group, SINGLE's collectives are no-ops
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert from_env() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"WORLD_SIZE=4 but \$MASTER_ADDR is not set"):
        from_env()
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert from_env() == Dist(rank=3, local_rank=1, world_size=4, local_world_size=2)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="expected 0 <= RANK < WORLD_SIZE=4"):
        from_env()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ConfigError, match=r"\$RANK='two': expected a whole number"):
        from_env()
    monkeypatch.setenv("PICSIFT_DIST_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="PICSIFT_DIST_TIMEOUT='0'"):
        timeout_s()
    monkeypatch.setenv("PICSIFT_DIST_TIMEOUT", "7.5")
    assert timeout_s() == 7.5


def test_device_and_backend_follow_the_local_rank() -> None:
    assert device_for("cpu", 1) == torch.device("cpu")
    with pytest.raises(ConfigError, match="mps cannot train in several processes"):
        device_for("mps", 0)
    if torch.cuda.is_available():
        assert device_for("auto", 0) == torch.device("cuda", 0)
        assert device_for("cuda:5", 0) == torch.device("cuda", 0)  # one GPU per process: the local rank's
    else:
        assert device_for("auto", 1) == torch.device("cpu")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            device_for("cuda", 0)


def test_one_process_collectives_are_identities() -> None:
    assert not SINGLE.enabled and SINGLE.is_main
    assert SINGLE.agree_max(0.25) == 0.25 and SINGLE.agree_min(3.0) == 3.0
    assert SINGLE.sum([1, 2.5]) == [1.0, 2.5] and SINGLE.any(False) is False
    assert SINGLE.share(lambda: "x") == "x" and SINGLE.broadcast(5) == 5
    assert list(range(4))[SINGLE.shard()] == [0, 1, 2, 3]
    model = torch.nn.Linear(2, 2)
    assert SINGLE.wrap(model) is model
    with process_group("cpu") as d:  # no torchrun variables in the test process
        assert d is SINGLE


def test_pruner_merge_is_a_no_op_in_one_process() -> None:
    pruner = LossPruner(4, 0.5, 0.85, torch.Generator().manual_seed(0))
    pruner.weigh(torch.tensor([1, 3]), torch.tensor([0.5, 2.0]))
    pruner.merge()
    assert pruner.loss.tolist() == [float("inf"), 0.5, float("inf"), 2.0]


def test_an_error_relayed_from_rank_0_keeps_its_message_and_is_marked() -> None:
    from picsift.data.available import MissingImagesError
    from picsift.distributed import _relayable

    # Its __init__ takes two arguments, so pickling cannot rebuild it: the copy keeps the message, typed.
    copy = _relayable(MissingImagesError("2 images are missing on disk", []))
    assert isinstance(copy, DistributedError) and str(copy) == "2 images are missing on disk"
    plain = _relayable(ConfigError("--epochs must be at least 1"))
    assert type(plain) is ConfigError and str(plain) == "--epochs must be at least 1"
    assert not is_relayed(plain)
    assert pickle.loads(pickle.dumps(plain)).args == plain.args


# ---- two real processes ----------------------------------------------------------------------------------------


def test_two_processes_train_the_fast_recipe_in_step(tmp_path: Path) -> None:
    """The library under two ranks started by hand: the collectives, error relaying, and the fast recipe trained
    in DistributedDataParallel on each rank's shard, ending with the same weights on both and rank 0's checkpoint."""
    data = digits_data(tmp_path)
    np.savez(tmp_path / "data.npz", x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val)
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    args = [str(tmp_path / "data.npz"), str(out)]
    procs = [
        start_rank(
            r, 2, port, args, tmp_path / f"worker{r}.log", module="support.ddp_worker", PICSIFT_DIST_TIMEOUT="60"
        )
        for r in range(2)
    ]
    for r, p in enumerate(procs):
        assert p.wait(timeout=180) == 0, (tmp_path / f"worker{r}.log").read_text()[-3000:]
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world_size"], r["backend"]) for r in reports] == [(0, 2, "gloo"), (1, 2, "gloo")]
    assert [r["max_rank"] for r in reports] == [1.0, 1.0] and [r["sum"] for r in reports] == [[2.0, 1.0]] * 2
    assert reports[0]["shard"] == [0, 2, 4] and reports[1]["shard"] == [1, 3]
    assert [r["shared"] for r in reports] == [{"decided_by": 0}] * 2  # rank 0 ran it, both returned its value
    assert reports[0]["error"] == {"message": "rank 0 refused", "relayed": False}
    assert reports[1]["error"] == {"message": "rank 0 refused", "relayed": True}
    # Same weights on both ranks after training (DDP: same start, same averaged gradients, same steps).
    assert reports[0]["weights_sum"] == pytest.approx(reports[1]["weights_sum"], rel=1e-6)
    assert reports[0]["weights_abs_sum"] == pytest.approx(reports[1]["weights_abs_sum"], rel=1e-6)
    assert reports[0]["buffers_sum"] == pytest.approx(reports[1]["buffers_sum"], rel=1e-6)  # rank 0's statistics
    # The recipe's batch for 90 images (32) split over the 2 processes; the history counts both shards.
    assert reports[0]["extra"]["batch_size"] == 16 and reports[0]["extra"]["global_batch_size"] == 32
    history = reports[0]["history"]
    assert [row["epoch"] for row in history] == list(range(1, 16))
    assert all(row["images"] == 2 * 2 * 16 for row in history)  # 2 steps of 16 images on each of 2 processes
    assert all(row["val_images"] == len(data.y_val) for row in history)  # validation split, counts summed
    assert [row["val_acc"] for row in history] == [row["val_acc"] for row in reports[1]["history"]]
    assert history[-1]["val_acc"] >= 0.8  # chance is 0.33
    assert (out / "checkpoint.pt").exists()


def test_a_rank_that_never_joins_stops_the_other_with_a_clear_error(tmp_path: Path) -> None:
    ws = tmp_path / "ws"  # the group forms before the workspace is opened: nothing is read or written without it
    started = time.monotonic()
    log = tmp_path / "rank0.log"
    proc = start_rank(0, 2, free_port(), ["train", "-w", str(ws), "--epochs", "1"], log, PICSIFT_DIST_TIMEOUT="3")
    assert proc.wait(timeout=120) == 2
    text = log.read_text()
    assert "error: rank 0 of 2: the processes did not all join at 127.0.0.1:" in text, text
    assert "within 3 s" in text and "PICSIFT_DIST_TIMEOUT" in text and "Traceback" not in text, text
    assert time.monotonic() - started < 100
    assert not ws.exists()


@pytest.fixture(scope="module")
def digits_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _workspace(tmp_path_factory.mktemp("ddp"))


def _workspace(tmp: Path) -> Path:
    images = write_digits(tmp / "digits", per_class=40, classes=3)
    ws = tmp / "ws"
    done = picsift(["import", str(images), "-w", str(ws)])
    assert done.returncode == 0, done.stderr
    return ws


def _runs(ws: Path) -> list[str]:
    return sorted(p.name for p in (ws / "runs").iterdir())


@pytest.mark.slow
def test_torchrun_trains_one_run_as_well_as_one_process(digits_ws: Path) -> None:
    ws = digits_ws
    args = ["train", "-w", str(ws), "--model", "fastcnn", "--epochs", "8", "--seed", "0", "--device", "cpu", "--json"]
    one = picsift(args)
    assert one.returncode == 0, one.stderr
    before = _runs(ws)
    two = torchrun(args)
    assert two.returncode == 0, two.stderr[-3000:]
    result = one_json(two.stdout)  # printed once, by rank 0
    new = sorted(set(_runs(ws)) - set(before))
    assert new == [result["run_id"]]  # one run folder for the two processes
    single = one_json(one.stdout)
    assert single["best_val_acc"] >= 0.8 and result["best_val_acc"] >= 0.8  # chance 0.33: the same band
    assert abs(single["best_val_acc"] - result["best_val_acc"]) <= 0.25
    run = RunFolder(ws / "runs" / result["run_id"])
    record = json.loads((run.path / "run.json").read_text())
    assert record["distributed"] == {"world_size": 2, "backend": "gloo", "device": "cpu", "trained_by": "every process"}
    assert json.loads((run.path / "env.json").read_text())["distributed"]["world_size"] == 2
    assert record["trainer"]["global_batch_size"] == 2 * record["trainer"]["batch_size"]
    assert [row["epoch"] for row in run.read_history()] == list(range(1, 9))  # written once, by rank 0
    assert run.has_artifact() and run.checkpoint_path.exists()
    assert "error" not in two.stderr.lower()


@pytest.mark.slow
def test_resume_under_torchrun_continues_the_run(digits_ws: Path) -> None:
    ws = digits_ws
    base = ["train", "-w", str(ws), "--model", "fastcnn", "--seed", "0", "--device", "cpu", "--json", "--no-calibrate"]
    first = torchrun([*base, "--epochs", "3"])
    assert first.returncode == 0, first.stderr[-3000:]
    run_id = one_json(first.stdout)["run_id"]
    resumed = torchrun([*base, "--epochs", "5", "--resume", run_id])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = one_json(resumed.stdout)
    history = RunFolder(ws / "runs" / again["run_id"]).read_history()
    assert [row["epoch"] for row in history] == [4, 5]  # every process loaded the same checkpoint
    # It goes on learning where the 3 epochs stopped (a 3-epoch schedule stretched to 5 does not reach the 8-epoch
    # run's validation accuracy, in one process either); the training accuracy counts both processes' shards.
    assert history[-1]["train_acc"] >= 0.6 and history[-1]["images"] == 96  # chance 0.33; 3 steps x 16 x 2 processes
    finished = torchrun([*base, "--epochs", "3", "--resume", run_id])
    # torchrun exits 1 when a process fails and names rank 0 as the root cause, with picsift's exit code 2.
    assert finished.returncode == 1 and "exitcode  : 2" in finished.stderr, finished.stderr[-3000:]
    assert finished.stderr.count("already finished 3 epochs") == 1  # rank 0 reports it; rank 1 stays quiet


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_rank_that_dies_or_hangs_stops_the_other_with_a_clear_error(tmp_path: Path, how: str) -> None:
    ws = _workspace(tmp_path)
    port = free_port()
    args = ["train", "-w", str(ws), "--model", "fastcnn", "--epochs", "400", "--device", "cpu", "--no-calibrate"]
    procs = [start_rank(r, 2, port, args, tmp_path / f"rank{r}.log", PICSIFT_DIST_TIMEOUT="5") for r in range(2)]
    try:
        wait_for(lambda: any(p.name == "metrics.jsonl" for p in (ws / "runs").rglob("*")), 150, "the first epoch")
        procs[1].send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        started = time.monotonic()
        assert procs[0].wait(timeout=60) == 2
        assert time.monotonic() - started < 40  # at once when the peer is gone, after the 5 s timeout when it hangs
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
    text = (tmp_path / "rank0.log").read_text()
    assert "rank 0 of 2: another process of this run failed or stopped answering" in text, text[-3000:]
    run = RunFolder(next((ws / "runs").iterdir()))
    assert run.checkpoint_path.exists() and not run.has_artifact()  # kept for --resume


def test_the_errors_a_lost_peer_causes_count_as_communication_failures() -> None:
    """Each message is one a collective raised when the other process died or was stopped (the last, gloo's, came
    from DDP's gradient all-reduce and used to escape as exit 1 with a traceback)."""
    from picsift.distributed import _is_comm_failure

    for text in (
        "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1234",
        "Connection reset by peer",
        "Application timeout caused pair closure",
    ):
        assert _is_comm_failure(RuntimeError(text)), text
    assert not _is_comm_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not _is_comm_failure(ValueError("Application timeout caused pair closure"))
