"""Load and soak: `picsift serve` under steady load with malformed requests and a hot-swap midway, and the
labelling app under concurrent annotators who collide on purpose.

    python bench/load_bench.py                      # 10-minute soak, then 2 minutes of 8 annotators
    python bench/load_bench.py --quick              # 20 s soak in 5 s windows, then 10 s of annotators
    python bench/load_bench.py --minutes 3 --bundle DIR [--swap-bundle DIR]

Server soak: a real `picsift serve` subprocess on loopback (one worker, API key, micro-batching) with a small
bundle (the default model trained here for an epoch on scikit-learn's digits, or --bundle). 32 keep-alive
connections (--concurrency) send requests back to back for --minutes; 5% of them (--malformed-rate) are
malformed: a wrong content type, a truncated image, bytes that are no image, an empty body, a body over the
server's size limit. Halfway, POST /v1/admin/reload swaps in a second bundle (a newer model trained here, or
--swap-bundle, else a copy of --bundle under another version). Measured per window (a minute; 5 s with
--quick): good requests answered, their p50/p99 latency, answers by status, requests that got no answer, and the
server's resident memory (VmRSS of /proc/PID/status). A request written into a keep-alive connection the server
had just closed for idling (the client starved of CPU for 5 s) is sent again on a new connection, as HTTP clients
with a connection pool do, and counted ("resent"). Checked: no 5xx; every good request answered 200; every
malformed one answered its own 4xx; no request dropped; every request in flight during the swap answered 200,
those started after it by the new model; p99 of the last window within --p99-tolerance times the first's;
resident memory growing < 10% from the end of the first window to the end; the server's own request counter and
its prediction log agreeing with what the client received.

Label app: a real `picsift label` subprocess (access token) on a workspace of 60 unlabelled digit images.
--annotators (8) HTTP clients label for --label-seconds with the app's optimistic concurrency (each write sends
the label_version it read; a stale one gets 409 with the conflict named). Half of them label images of their own;
the other half all work on the same 4 images, with single and two-image writes and undos, so they collide. Then
the catalog is read: every acknowledged write must be in the image's label history at the version the app
acknowledged (none lost, no version acknowledged twice), every change in the history must have been
acknowledged to someone, and every reported conflict must have a real later write behind it.

Writes bench/results/load_bench.json and prints the tables last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchutil import (
    MULTIPART_TYPE,
    REPO,
    build_bundle,
    free_port,
    http_request,
    multipart_body,
    multipart_request,
    read_response,
    results_path,
    rss_kib,
    start_picsift,
    stop,
    wait_ready,
)
from benchutil import machine_info as machine

API_KEY = "load-bench-key"
LABEL_TOKEN = "load-bench-token"
MAX_REQUEST_BYTES = 1024 * 1024  # the server's body cap in the soak; oversized requests send one byte more
REQUEST_TIMEOUT_S = 60.0
# Each malformed kind and the status the server must answer it with.
MALFORMED = {
    "bad_content_type": 415,
    "truncated_image": 422,
    "not_an_image": 415,
    "empty_body": 422,  # a multipart body without the field 'file'
    "oversized": 413,
}
RSS_GROWTH_LIMIT = 0.10


# ---- server soak ------------------------------------------------------------------------------------------
@dataclass
class Exchange:
    """One request of the soak: its kind ("good" or a MALFORMED key), start and end in seconds since the load
    began, the status (0: no answer, the connection failed; -1: no answer within REQUEST_TIMEOUT_S), for an
    answered good request the model version that answered, whether it was sent again on a new connection because
    the server had closed the idle keep-alive one first (see `_send`), and the error when there was no answer."""

    kind: str
    start: float
    end: float
    status: int
    version: str | None = None
    resent: bool = False
    error: str | None = None


@dataclass
class SoakPlan:
    """What to send, for how long, and when to hot-swap to `swap_bundle` (seconds after the start)."""

    port: int
    pid: int
    images: list[bytes]
    seconds: float
    window_s: float
    swap_bundle: Path | None
    swap_at: float
    concurrency: int = 32
    malformed_rate: float = 0.05
    seed: int = 0
    auth: dict[str, str] = field(default_factory=lambda: {"X-API-Key": API_KEY})


def malformed_requests(port: int, image: bytes, auth: dict[str, str]) -> dict[str, bytes]:
    """The raw bytes of one request of each MALFORMED kind."""
    text = b"this is a text file, not a picture\n" * 8
    return {
        "bad_content_type": http_request("POST", "/v1/predict", port, image, {"Content-Type": "text/plain", **auth}),
        "truncated_image": multipart_request(image[: len(image) // 2], port, auth),
        "not_an_image": multipart_request(text, port, auth),
        "empty_body": http_request("POST", "/v1/predict", port, b"", {"Content-Type": MULTIPART_TYPE, **auth}),
        "oversized": http_request(
            "POST",
            "/v1/predict",
            port,
            multipart_body(b"\0" * MAX_REQUEST_BYTES),
            {"Content-Type": MULTIPART_TYPE, **auth},
        ),
    }


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    writer.write(request)
    await writer.drain()
    return await read_response(reader)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _send(conn: Connection | None, port: int, request: bytes) -> tuple[Connection, int, bytes, bool, bool]:
    """Send `request` on `conn` (a new connection when None): (connection, status, body, server closes, resent).

    A server closes a keep-alive connection idle longer than its timeout (uvicorn: 5 s; a client starved of CPU
    on a loaded machine can pause that long). A request written into such a connection gets no byte back, and the
    server never saw it: like any HTTP client with a connection pool, send it once more on a new connection. A
    connection failing after part of an answer, or a new connection failing, is not retried."""
    if conn is not None:
        try:
            return (conn, *await _exchange(*conn, request), False)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            if isinstance(e, asyncio.IncompleteReadError) and e.partial:
                raise
            conn[1].close()
        conn = await asyncio.open_connection("127.0.0.1", port)
        return (conn, *await _exchange(*conn, request), True)
    conn = await asyncio.open_connection("127.0.0.1", port)
    return (conn, *await _exchange(*conn, request), False)


async def _client(i: int, plan: SoakPlan, t0: float, stop_at: float, out: list[Exchange]) -> None:
    """One keep-alive connection sending requests back to back until `stop_at` (reconnecting when closed)."""
    rng = random.Random(plan.seed * 1000 + i)
    good = [multipart_request(im, plan.port, plan.auth) for im in plan.images]
    bad = malformed_requests(plan.port, plan.images[0], plan.auth)
    kinds = sorted(bad)
    conn: Connection | None = None
    k = i
    while time.perf_counter() < stop_at:
        if rng.random() < plan.malformed_rate:
            kind = kinds[rng.randrange(len(kinds))]
            request = bad[kind]
        else:
            kind, request, k = "good", good[k % len(good)], k + 1
        start = time.perf_counter()
        status, version, close, resent, error = 0, None, True, False, None
        try:
            conn, status, body, close, resent = await asyncio.wait_for(
                _send(conn, plan.port, request), REQUEST_TIMEOUT_S
            )
            if kind == "good" and status == 200:
                version = json.loads(body)["model_version"]
        except (TimeoutError, asyncio.TimeoutError):
            status, error = -1, "timeout"
        except (OSError, asyncio.IncompleteReadError) as e:
            status, error = 0, f"{type(e).__name__}: {e}"[:200]
        out.append(Exchange(kind, start - t0, time.perf_counter() - t0, status, version, resent, error))
        if close and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def _swap(plan: SoakPlan, t0: float, record: dict[str, Any]) -> None:
    """POST /v1/admin/reload {"bundle": swap_bundle} at `swap_at`; its times, status and answer go to `record`."""
    assert plan.swap_bundle is not None
    await asyncio.sleep(max(0.0, t0 + plan.swap_at - time.perf_counter()))
    body = json.dumps({"bundle": str(plan.swap_bundle)}).encode()
    request = http_request(
        "POST", "/v1/admin/reload", plan.port, body, {"Content-Type": "application/json", **plan.auth}
    )
    record["start"] = time.perf_counter() - t0
    reader, writer = await asyncio.open_connection("127.0.0.1", plan.port)
    try:
        status, answer, _ = await asyncio.wait_for(_exchange(reader, writer, request), 300)
    finally:
        writer.close()
    record.update(end=time.perf_counter() - t0, status=status, answer=json.loads(answer))


async def _sample_rss(plan: SoakPlan, t0: float, windows: int, samples: list[tuple[float, int | None]]) -> None:
    """The server's resident memory at the start and at the end of each window."""
    samples.append((0.0, rss_kib(plan.pid)))
    for w in range(1, windows + 1):
        await asyncio.sleep(max(0.0, t0 + w * plan.window_s - time.perf_counter()))
        samples.append((w * plan.window_s, rss_kib(plan.pid)))


async def _run_soak(plan: SoakPlan) -> tuple[list[Exchange], dict[str, Any], list[tuple[float, int | None]]]:
    exchanges: list[Exchange] = []
    swap: dict[str, Any] = {}
    rss: list[tuple[float, int | None]] = []
    windows = max(1, round(plan.seconds / plan.window_s))
    t0 = time.perf_counter()
    stop_at = t0 + plan.seconds
    tasks = [_client(i, plan, t0, stop_at, exchanges) for i in range(plan.concurrency)]
    tasks.append(_sample_rss(plan, t0, windows, rss))
    if plan.swap_bundle is not None:
        tasks.append(_swap(plan, t0, swap))
    await asyncio.gather(*tasks)
    return exchanges, swap, rss


def percentile(values: list[float], p: float) -> float | None:
    """The `p` quantile (0..1) of `values` by the nearest-rank method; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _windows(exchanges: list[Exchange], plan: SoakPlan, rss: list[tuple[float, int | None]]) -> list[dict[str, Any]]:
    """Per window (by request start): good requests answered 200, their p50/p99 ms, answers by status, drops, RSS."""
    n = max(1, round(plan.seconds / plan.window_s))
    rows = []
    for w in range(n):
        inside = [e for e in exchanges if min(n - 1, int(e.start // plan.window_s)) == w]
        good = [e for e in inside if e.kind == "good"]
        lat = [(e.end - e.start) * 1000 for e in good if e.status == 200]
        p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
        rows.append(
            {
                "window": w + 1,
                "good_ok": len(lat),
                "good_rps": len(lat) / plan.window_s,
                "p50_ms": None if p50 is None else round(p50, 2),
                "p99_ms": None if p99 is None else round(p99, 2),
                "good_errors": sum(1 for e in good if e.status != 200),
                "malformed": sum(1 for e in inside if e.kind != "good"),
                "status_counts": dict(sorted(Counter(str(e.status) for e in inside).items())),
                "server_5xx": sum(1 for e in inside if e.status >= 500),
                "no_answer": sum(1 for e in inside if e.status <= 0),
                "resent_after_idle_close": sum(1 for e in inside if e.resent),
                "rss_mib": None if rss[w + 1][1] is None else round(rss[w + 1][1] / 1024, 1),  # type: ignore[operator]
            }
        )
    return rows


def _swap_report(exchanges: list[Exchange], swap: dict[str, Any], old: str) -> dict[str, Any]:
    """Requests in flight during the swap (all must be 200), and who answered those after it."""
    if not swap:
        return {}
    new = swap["answer"].get("version")
    during = [e for e in exchanges if e.kind == "good" and e.start < swap["end"] and e.end > swap["start"]]
    before = [e for e in exchanges if e.kind == "good" and e.end <= swap["start"] and e.status == 200]
    after = [e for e in exchanges if e.kind == "good" and e.start >= swap["end"] and e.status == 200]
    return {
        "status": swap["status"],
        "from_version": old,
        "to_version": new,
        "started_s": round(swap["start"], 3),
        "took_s": round(swap["end"] - swap["start"], 3),
        "in_flight": len(during),
        "in_flight_failed": sum(1 for e in during if e.status != 200),
        "in_flight_answered_by": dict(Counter(e.version for e in during if e.status == 200)),
        "before_by_new_model": sum(1 for e in before if e.version != old),
        "after_by_old_model": sum(1 for e in after if e.version != new),
    }


def soak(plan: SoakPlan, old_version: str, p99_tolerance: float = 1.5) -> dict[str, Any]:
    """Run the soak described by `plan` against a server already up; returns windows, swap report, totals, checks."""
    exchanges, swap, rss = asyncio.run(_run_soak(plan))
    windows = _windows(exchanges, plan, rss)
    swap_report = _swap_report(exchanges, swap, old_version)
    by_kind: dict[str, dict[str, int]] = {}
    for e in exchanges:
        by_kind.setdefault(e.kind, Counter())[str(e.status)] += 1  # type: ignore[index]
    good = [e for e in exchanges if e.kind == "good"]
    first, last = windows[0], windows[-1]
    rss_first, rss_end = rss[1][1], rss[-1][1]
    growth = (rss_end - rss_first) / rss_first if rss_first and rss_end else None
    p99_ratio = last["p99_ms"] / first["p99_ms"] if first["p99_ms"] and last["p99_ms"] else None
    checks = {
        "no_5xx": all(e.status < 500 for e in exchanges),
        "good_all_200": all(e.status == 200 for e in good),
        "nothing_dropped": all(e.status > 0 for e in exchanges),
        "malformed_answered_their_4xx": all(
            set(counts) == {str(MALFORMED[kind])} for kind, counts in by_kind.items() if kind != "good"
        ),
        "swap_clean": bool(
            swap_report
            and swap_report["status"] == 200
            and swap_report["in_flight"] > 0
            and swap_report["in_flight_failed"] == 0
            and swap_report["after_by_old_model"] == 0
            and swap_report["before_by_new_model"] == 0
        )
        if plan.swap_bundle is not None
        else None,
        "p99_last_within_tolerance": None if p99_ratio is None else p99_ratio <= p99_tolerance,
        "rss_growth_below_10pct": None if growth is None else growth < RSS_GROWTH_LIMIT,
    }
    return {
        "settings": {k: v for k, v in asdict(plan).items() if k not in ("images", "auth", "pid")},
        "windows": windows,
        "swap": swap_report,
        "requests": len(exchanges),
        "good_requests": len(good),
        "good_ok": sum(1 for e in good if e.status == 200),
        "answers_by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
        "resent_after_idle_close": sum(1 for e in exchanges if e.resent),
        "no_answer_examples": [asdict(e) for e in exchanges if e.status <= 0][:10],
        "rss_kib": [{"t_s": t, "rss_kib": v} for t, v in rss],
        "rss_growth": None if growth is None else round(growth, 4),
        "p99_ratio_last_first": None if p99_ratio is None else round(p99_ratio, 3),
        "p99_tolerance": p99_tolerance,
        "checks": checks,
    }


def server_counts(port: int, auth: dict[str, str], prediction_dir: Path) -> dict[str, Any]:
    """What the server itself counted: /v1/predict answers by status (its metrics) and prediction log lines."""
    import re

    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=auth, timeout=30).text
    statuses: Counter[str] = Counter()
    pattern = r'^picsift_requests_total\{method="POST",route="/v1/predict",status="(\d+)"\} (\S+)$'
    for m in re.finditer(pattern, text, re.M):
        statuses[m.group(1)] += int(float(m.group(2)))
    files = sorted(prediction_dir.glob("*.jsonl"))
    lines = sum(sum(1 for _ in f.open("rb")) for f in files)
    return {"predict_by_status": dict(sorted(statuses.items())), "prediction_log_lines": lines, "log_files": len(files)}


def start_model_server(bundle: Path, work: Path, threads: int = 1) -> tuple[Any, int, Path]:
    """`picsift serve BUNDLE` on a free port (API key, 1 MiB body cap); returns (process, port, its workspace)."""
    port = free_port()
    ws = work / "serve-ws"
    log = (work / "serve.log").open("wb")
    args = ["serve", str(bundle), "--port", str(port), "--workspace", str(ws), "--api-key", API_KEY]
    args += ["--max-batch-size", "32", "--max-wait-ms", "5", "--threads", str(threads)]
    args += ["--max-request-bytes", str(MAX_REQUEST_BYTES)]
    return start_picsift(args, log), port, ws


def swapped_copy(bundle: Path, dest: Path) -> Path:
    """A copy of `bundle` whose version is the original's + "-reloaded" (a second bundle to hot-swap to)."""
    shutil.copytree(bundle, dest)
    meta = json.loads((dest / "bundle.json").read_text())
    meta["version"] = f"{meta['version']}-reloaded"
    (dest / "bundle.json").write_text(json.dumps(meta, indent=2))
    return dest


# ---- label app --------------------------------------------------------------------------------------------
@dataclass
class LabelLog:
    """What the annotators were told: acknowledged writes, reported conflicts, unexpected answers, latencies."""

    acks: list[dict[str, Any]] = field(default_factory=list)  # image_id, version, label, annotator, kind
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # image_id, expected, annotator
    errors: list[dict[str, Any]] = field(default_factory=list)  # status, path, detail
    attempts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


CLASSES = ("0", "1", "2")


class Annotator:
    """One HTTP client of the labelling app: reads an image's version, writes a label based on it."""

    def __init__(self, name: str, port: int, images: list[int], colliding: bool, log: LabelLog, seed: int) -> None:
        import httpx

        headers = {"X-Picsift-Token": LABEL_TOKEN, "X-Picsift-User": name, "X-Picsift-Client": "load-bench"}
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60)
        self.name, self.images, self.colliding, self.log = name, images, colliding, log
        self.rng = random.Random(seed)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        t0 = time.perf_counter()
        r = self.http.request(method, path, json=body)
        with self.log.lock:
            self.log.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code not in (200, 409):
                self.log.errors.append({"status": r.status_code, "path": path, "detail": r.text[:300]})
        return r

    def _version(self, image_id: int) -> tuple[int, str | None]:
        r = self._call("GET", f"/api/images/{image_id}")
        r.raise_for_status()
        d = r.json()
        return int(d["version"]), d["label"]

    def label(self, ids: list[int]) -> None:
        """Label `ids` with one request, each with the version just read (a short pause widens the window in
        which another annotator may write first)."""
        expected = {i: self._version(i) for i in ids}
        label = self.rng.choice(CLASSES)
        if self.colliding:
            time.sleep(self.rng.uniform(0, 0.01))
        body = {"image_ids": ids, "label": label, "expected_versions": {str(i): v for i, (v, _) in expected.items()}}
        r = self._call("POST", "/api/labels", body)
        with self.log.lock:
            self.log.attempts += len(ids)
            if r.status_code not in (200, 409):
                return
            d = r.json()
            for a in d["applied"]:
                kind = "bulk" if len(ids) > 1 else "label"
                self.log.acks.append({**_ack(a["image_id"], a["version"], a["label"], self.name), "kind": kind})
            for c in d["conflicts"]:
                self.log.conflicts.append({"image_id": c["image_id"], "expected": expected[c["image_id"]][0]})

    def undo(self, image_id: int) -> None:
        """Undo the image's last change, based on the version just read."""
        version, _ = self._version(image_id)
        r = self._call("POST", f"/api/images/{image_id}/undo", {"expected_version": version})
        with self.log.lock:
            self.log.attempts += 1
            if r.status_code == 200:
                d = r.json()
                self.log.acks.append({**_ack(image_id, d["version"], d["label"], self.name), "kind": "undo"})
            elif r.status_code == 409:
                self.log.conflicts.append({"image_id": image_id, "expected": version})

    def run(self, stop_at: float) -> None:
        """Work until `stop_at`: mostly single writes; colliders also write two images at once and undo."""
        n = 0
        try:
            while time.perf_counter() < stop_at:
                n += 1
                if n % 7 == 0:
                    self._call("GET", "/api/images", None)  # browsing the grid: reads between the writes
                if self.colliding and n % 5 == 0:
                    self.label(self.rng.sample(self.images, 2))
                elif self.colliding and n % 9 == 0:
                    self.undo(self.rng.choice(self.images))
                else:
                    self.label(
                        [self.images[n % len(self.images)] if not self.colliding else self.rng.choice(self.images)]
                    )
        finally:
            self.http.close()


def _ack(image_id: int, version: int, label: str | None, annotator: str) -> dict[str, Any]:
    return {"image_id": int(image_id), "version": int(version), "label": label, "annotator": annotator}


def label_load(
    port: int, image_ids: list[int], annotators: int, seconds: float, hot: int = 4, seed: int = 0
) -> LabelLog:
    """`annotators` clients for `seconds`: the first half on images of their own, the rest all on the first `hot`
    images (they collide). Returns what they were told."""
    log = LabelLog()
    hot_ids, rest = image_ids[:hot], image_ids[hot:]
    own = max(1, annotators // 2)
    workers = []
    for a in range(annotators):
        colliding = a >= own
        mine = hot_ids if colliding else rest[a::own]
        workers.append(Annotator(f"annotator-{a + 1}", port, mine, colliding, log, seed * 100 + a))
    stop_at = time.perf_counter() + seconds
    threads = [threading.Thread(target=w.run, args=(stop_at,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return log


def verify_labels(ws_root: Path, log: LabelLog, seconds: float, annotators: int) -> dict[str, Any]:
    """Compare what the annotators were told with the catalog's label history (see the module docstring)."""
    from picsift.store import Workspace

    ws = Workspace.open(ws_root)
    try:
        lost, duplicate, phantom, final_wrong = [], 0, 0, []
        acks_by_image: dict[int, list[dict[str, Any]]] = {}
        for a in log.acks:
            acks_by_image.setdefault(a["image_id"], []).append(a)
        touched = sorted(set(acks_by_image) | {c["image_id"] for c in log.conflicts})
        versions_by_image: dict[int, set[int]] = {}
        for image_id in touched:
            events = [e for e in ws.catalog.label_history(image_id) if e["status"] in ("accepted", "superseded")]
            acks = acks_by_image.get(image_id, [])
            versions = [a["version"] for a in acks]
            versions_by_image[image_id] = set(versions)
            duplicate += len(versions) - len(set(versions))
            for a in acks:
                e = events[a["version"] - 1] if 1 <= a["version"] <= len(events) else None
                if e is None or e["label"] != a["label"] or e["annotator"] != a["annotator"]:
                    lost.append({**a, "history": e})
            phantom += len(events) - len(set(versions) & set(range(1, len(events) + 1)))
            row = ws.catalog.image(image_id)
            if row.label_version != len(events) or (events and row.label != events[-1]["label"]):
                final_wrong.append({"image_id": image_id, "label": row.label, "version": row.label_version})
        spurious = [c for c in log.conflicts if c["expected"] + 1 not in versions_by_image.get(c["image_id"], set())]
    finally:
        ws.close()
    five = sum(1 for e in log.errors if e["status"] >= 500)
    return {
        "annotators": annotators,
        "seconds": seconds,
        "writes_attempted": log.attempts,
        "writes_acked": len(log.acks),
        "writes_per_s": round(len(log.acks) / seconds, 2),
        "acked_by_kind": dict(Counter(a["kind"] for a in log.acks)),
        "conflicts_reported": len(log.conflicts),
        "writes_lost": len(lost) + duplicate,
        "lost_examples": lost[:5],
        "versions_acked_twice": duplicate,
        "unacknowledged_changes": phantom,
        "spurious_conflicts": len(spurious),
        "final_state_mismatches": final_wrong[:5],
        "unexpected_answers": len(log.errors),
        "server_5xx": five,
        "error_examples": log.errors[:5],
        "request_p50_ms": round(statistics.median(log.latencies_ms), 2) if log.latencies_ms else None,
        "request_p99_ms": None if not log.latencies_ms else round(percentile(log.latencies_ms, 0.99) or 0, 2),
        "checks": {
            "no_write_lost": not lost and duplicate == 0,
            "no_unacknowledged_change": phantom == 0,
            "conflicts_reported": len(log.conflicts) > 0,
            "no_spurious_conflict": not spurious,
            "final_state_consistent": not final_wrong,
            "no_unexpected_answer": not log.errors,
        },
    }


def label_workspace(root: Path, per_class: int = 20) -> tuple[Path, list[int]]:
    """A workspace of 3 x `per_class` unlabelled digit images; returns (its folder, the image ids)."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.label import make_workspace

    ws = make_workspace(root, per_class=per_class, labelled_per_class=0)
    ids = [r.id for r in ws.catalog.images()]
    ws.close()
    return ws.root, ids


def start_label_server(ws_root: Path, work: Path) -> tuple[Any, int]:
    """`picsift label` on a free port with an access token; returns (process, port)."""
    port = free_port()
    log = (work / "label.log").open("wb")
    args = ["label", "-w", str(ws_root), "--port", str(port), "--no-browser", "--token", LABEL_TOKEN]
    return start_picsift(args, log), port


# ---- the benchmark ----------------------------------------------------------------------------------------
def _bundles(args: argparse.Namespace, work: Path) -> tuple[Path, Path, list[bytes], str]:
    if args.bundle:
        from picsift.deploy.bundle import read_bundle_meta

        sys.path.insert(0, str(REPO / "tests"))
        from support.images import write_digits

        digits = write_digits(work / "digits", per_class=2, classes=8, size=32)
        images = [f.read_bytes() for f in sorted(digits.rglob("*.png"))]
        swap = args.swap_bundle or swapped_copy(args.bundle, work / "swap-bundle")
        return args.bundle, swap, images, f"{read_bundle_meta(args.bundle)['model']} (bundle {args.bundle})"
    bundle, images, desc = build_bundle(work / "a", quick=True, epochs=1)
    if args.swap_bundle:
        return bundle, args.swap_bundle, images, desc
    swap, _, swap_desc = build_bundle(work / "b", quick=True, epochs=2)
    return bundle, swap, images, f"{desc}; swapped to {swap_desc}"


def _print_tables(result: dict[str, Any]) -> None:
    s, info = result["soak"], result["machine"]
    print(
        f"\nmodel: {result['model']}\n{info['cpu']}, {info['cores']} cores, load average at start "
        f"{info['load_average'][0]:.1f}, at end {result['load_average_end'][0]:.1f}; concurrency "
        f"{s['settings']['concurrency']}, {s['settings']['malformed_rate']:.0%} malformed, window "
        f"{s['settings']['window_s']:.0f} s"
    )
    print("\nserver soak (per window: good requests answered 200, their latency, answers by status, resident memory)")
    print(
        f"{'window':>6} {'good ok':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'5xx':>4} {'dropped':>7} {'resent':>6} "
        f"{'RSS MiB':>8}  status counts"
    )
    for w in s["windows"]:
        print(
            f"{w['window']:>6} {w['good_ok']:>8} {w['good_rps']:>7.1f} {w['p50_ms'] or 0:>7.1f} {w['p99_ms'] or 0:>7.1f} "
            f"{w['server_5xx']:>4} {w['no_answer']:>7} {w['resent_after_idle_close']:>6} {w['rss_mib'] or 0:>8.1f}  "
            f"{w['status_counts']}"
        )
    sw = s["swap"]
    if sw:
        print(
            f"\nhot-swap at {sw['started_s']:.1f} s ({sw['from_version']} -> {sw['to_version']}): HTTP {sw['status']} "
            f"in {sw['took_s']:.2f} s; {sw['in_flight']} requests in flight, {sw['in_flight_failed']} failed, "
            f"answered by {sw['in_flight_answered_by']}"
        )
    print(f"server counted: {result['server_counts']}")
    print(
        f"RSS growth window 1 -> end: {s['rss_growth']:+.1%}; p99 last/first: {s['p99_ratio_last_first']} "
        f"(tolerance {s['p99_tolerance']}x)"
    )
    print(f"checks: {s['checks']}")
    lab = result["label"]
    print("\nlabel app (concurrent annotators, optimistic concurrency)")
    print(
        f"{'annotators':>10} {'writes acked':>12} {'writes/s':>8} {'conflicts':>9} {'lost':>5} {'unacked':>7} {'spurious':>8} {'5xx':>4}"
    )
    print(
        f"{lab['annotators']:>10} {lab['writes_acked']:>12} {lab['writes_per_s']:>8.1f} {lab['conflicts_reported']:>9} "
        f"{lab['writes_lost']:>5} {lab['unacknowledged_changes']:>7} {lab['spurious_conflicts']:>8} {lab['server_5xx']:>4}"
    )
    print(f"checks: {lab['checks']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 s soak in 5 s windows, 10 s of annotators")
    ap.add_argument("--minutes", type=float, default=None, help="soak length in minutes (default 10)")
    ap.add_argument("--window-seconds", type=float, default=None, help="measurement window (default 60; 5 quick)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--malformed-rate", type=float, default=0.05)
    ap.add_argument("--p99-tolerance", type=float, default=1.5, help="last window's p99 at most this x the first's")
    ap.add_argument("--bundle", type=Path, default=None, help="serve this bundle instead of training one")
    ap.add_argument("--swap-bundle", type=Path, default=None, help="hot-swap to this bundle midway")
    ap.add_argument("--annotators", type=int, default=8)
    ap.add_argument("--label-seconds", type=float, default=None, help="annotators' time (default 120; 10 quick)")
    ap.add_argument("--threads", type=int, default=1, help="the server's inference threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="results file (default bench/results/load_bench.json)")
    args = ap.parse_args()
    seconds = 60 * args.minutes if args.minutes else (20.0 if args.quick else 600.0)
    window = args.window_seconds or (5.0 if args.quick else 60.0)
    label_seconds = args.label_seconds or (10.0 if args.quick else 120.0)

    from picsift.deploy.bundle import read_bundle_meta
    from picsift.jsonio import write_json

    work = Path(tempfile.mkdtemp(prefix="picsift-load-bench-"))
    procs: list[Any] = []
    try:
        bundle, swap_bundle, images, model_desc = _bundles(args, work)
        info = machine()
        proc, port, serve_ws = start_model_server(bundle, work, args.threads)
        procs.append(proc)
        auth = {"X-API-Key": API_KEY}
        wait_ready(port, proc, path="/readyz", headers=auth)
        plan = SoakPlan(
            port=port,
            pid=proc.pid,
            images=images,
            seconds=seconds,
            window_s=window,
            swap_bundle=swap_bundle,
            swap_at=seconds / 2,
            concurrency=args.concurrency,
            malformed_rate=args.malformed_rate,
            seed=args.seed,
        )
        soak_result = soak(plan, read_bundle_meta(bundle)["version"], args.p99_tolerance)
        counted = server_counts(port, auth, serve_ws / "predictions")
        stop(procs)
        procs.clear()

        ws_root, ids = label_workspace(work / "label")
        lproc, lport = start_label_server(ws_root, work)
        procs.append(lproc)
        wait_ready(lport, lproc, path="/api/summary", headers={"X-Picsift-Token": LABEL_TOKEN})
        log = label_load(lport, ids, args.annotators, label_seconds, seed=args.seed)
        stop(procs)
        procs.clear()
        label_result = verify_labels(ws_root, log, label_seconds, args.annotators)
        server_log = (work / "serve.log").read_text(errors="replace")[-3000:]
    except BaseException:
        for name in ("serve.log", "label.log"):
            if (work / name).exists():
                print(f"--- {name} (last 3000 characters)\n{(work / name).read_text(errors='replace')[-3000:]}")
        raise
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)

    import os

    ok_200 = soak_result["answers_by_kind"].get("good", {}).get("200", 0)
    counted["client_good_200"] = ok_200
    # Every 200 the client received is one the server counted and one line of its prediction log (kept whole
    # while the log has not rotated files away).
    soak_result["checks"]["server_agrees"] = counted["predict_by_status"].get("200") == ok_200 and (
        counted["prediction_log_lines"] == ok_200 or counted["log_files"] >= 10
    )
    result = {
        "benchmark": "load_bench",
        "quick": args.quick,
        "model": model_desc,
        "machine": info,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "soak": soak_result,
        "server_counts": counted,
        "server_log_tail": server_log,
        "label": label_result,
        "command": "python bench/load_bench.py " + " ".join(sys.argv[1:]),
    }
    out = args.out or results_path("load_bench", args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result, indent=2)
    _print_tables(result)


if __name__ == "__main__":
    main()
