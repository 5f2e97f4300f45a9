"""Nothing lost, nothing crashes, on a small scale (bench/load_bench.py's own code): a real `picsift serve`
process under concurrent load with malformed requests mixed in and a hot-swap midway, and a real `picsift label`
process under 8 annotators who collide on purpose."""

from __future__ import annotations

from pathlib import Path

from picsift.deploy.bundle import read_bundle_meta
from picsift.deploy.export import export
from support.bench import bench_module
from support.deploy import make_workspace, train_run

lb = bench_module("load_bench")


def test_server_and_label_app_under_load_lose_nothing(tmp_path: Path) -> None:
    bundle = export(train_run(make_workspace(tmp_path, per_class=8)), tmp_path / "bundle")
    swap_to = lb.swapped_copy(bundle, tmp_path / "bundle-v2")
    images = [f.read_bytes() for f in sorted((tmp_path / "images").rglob("*.png"))[:6]]
    ws_root, ids = lb.label_workspace(tmp_path / "label", per_class=6)
    serve, port, serve_ws = lb.start_model_server(bundle, tmp_path)
    label, lport = lb.start_label_server(ws_root, tmp_path)
    procs = [serve, label]
    try:
        lb.wait_ready(port, serve, timeout=90, path="/readyz", headers={"X-API-Key": lb.API_KEY})
        plan = lb.SoakPlan(
            port=port,
            pid=serve.pid,
            images=images,
            seconds=4.0,
            window_s=2.0,
            swap_bundle=swap_to,
            swap_at=2.0,
            concurrency=16,
            malformed_rate=0.15,
        )
        old = read_bundle_meta(bundle)["version"]
        soak = lb.soak(plan, old)
        checks = soak["checks"]
        assert checks["no_5xx"] and checks["good_all_200"] and checks["nothing_dropped"], soak["answers_by_kind"]
        # Each malformed kind was sent and answered with its own 4xx.
        assert {k: set(v) for k, v in soak["answers_by_kind"].items() if k != "good"} == {
            k: {str(status)} for k, status in lb.MALFORMED.items()
        }
        swap = soak["swap"]
        assert swap["status"] == 200 and swap["to_version"] == f"{old}-reloaded"
        assert swap["in_flight"] > 0 and swap["in_flight_failed"] == 0, swap
        assert swap["after_by_old_model"] == 0 and swap["before_by_new_model"] == 0, swap
        counted = lb.server_counts(port, {"X-API-Key": lb.API_KEY}, serve_ws / "predictions")
        assert counted["predict_by_status"]["200"] == soak["good_ok"] == counted["prediction_log_lines"]
        assert all(w["rss_mib"] for w in soak["windows"])

        lb.wait_ready(lport, label, timeout=90, path="/api/summary", headers={"X-Picsift-Token": lb.LABEL_TOKEN})
        log = lb.label_load(lport, ids, annotators=8, seconds=3.0, hot=2)
        lb.stop(procs)
        result = lb.verify_labels(ws_root, log, 3.0, 8)
        assert result["writes_acked"] > 0 and result["conflicts_reported"] > 0, result
        assert result["writes_lost"] == 0 and result["unacknowledged_changes"] == 0, result
        assert result["spurious_conflicts"] == 0 and not result["final_state_mismatches"], result
        assert result["unexpected_answers"] == 0, result["error_examples"]
    finally:
        lb.stop(procs)
