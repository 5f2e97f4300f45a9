"""HTTP fuzzing of both web apps: the model server (`picsift serve`) and the labelling app (`picsift label`).

Each app runs in-process (ASGI) with its secret on and a real bundle or workspace behind it (scikit-learn digits).
Schemathesis draws N cases per operation and generation mode (valid and invalid data) from the app's OpenAPI
schema; then the hand-made bad requests of the tests are sent (cut multipart, deep JSON, NaN, huge and
negative ids, path-like names, non-UTF-8). Counted: 5xx answers (target 0), crashes (the app raised), schema
violations (status code, content type or body not as declared) and unclear client errors (a 4xx that is not
JSON `{"error", "detail"}` with a readable message).

    python bench/http_fuzz_bench.py              # 100 cases per operation and mode
    python bench/http_fuzz_bench.py --quick      # 10 (smoke test, about a minute)

Prints the table last and writes bench/results/http_fuzz_bench.json with the machine's description.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEY, TOKEN = "bench-key", "bench-token"


def bundle_and_workspaces(work: Path) -> tuple[Path, Path, bytes]:
    """A bundle trained on digits, a labelling workspace with one feedback item, and a PNG to send."""
    from picsift.deploy.export import export
    from picsift.store.feedback_store import FeedbackStore
    from support.deploy import make_workspace as deploy_workspace
    from support.deploy import train_run
    from support.label import make_workspace as label_workspace

    bundle = export(train_run(deploy_workspace(work / "server", per_class=6), "fastcnn"), work / "bundle")
    ws = label_workspace(work / "label", per_class=6, labelled_per_class=2)
    FeedbackStore(ws).add("1", image=Path(ws.catalog.image(1).path).read_bytes())
    root = ws.root
    ws.close()
    png = next((bundle.parent / "server" / "images" / "1").glob("*.png")).read_bytes()
    return bundle, root, png


def run_app(name: str, app: Any, base_url: str, headers: dict[str, str], cases: int, seed: int, **kw: Any) -> dict:
    from schemathesis.python import asgi

    from support.http_fuzz import fuzz_app

    try:
        report = fuzz_app(
            name, app, app.openapi(), base_url=base_url, headers=headers, max_examples=cases, seed=seed, **kw
        )
    finally:
        asgi.shutdown_lifespans()
    return {**report.summary(), "examples": report.findings()[:20]}


def run_bad_requests(name: str, app: Any, base_url: str, cases: list) -> dict:
    from fastapi.testclient import TestClient

    from support.http_fuzz import send_bad_requests

    start = time.perf_counter()
    with TestClient(app, base_url=base_url, raise_server_exceptions=False) as client:
        wrong = send_bad_requests(client, cases)
    return {
        "app": name,
        "requests": len(cases),
        "answered_otherwise": len(wrong),
        "server_errors": sum(" -> 5" in w for w in wrong),
        "examples": wrong[:20],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="cases per operation and generation mode")
    parser.add_argument("--quick", action="store_true", help="10 cases per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = 10 if args.quick else args.cases
    sys.path.insert(0, str(REPO / "tests"))
    logging.disable(logging.WARNING)  # the apps log each refused job and unknown run; the counts are what matter
    from benchutil import machine_info, results_path
    from picsift.deploy.server import ServerSettings
    from picsift.deploy.server import create_app as create_server
    from picsift.jsonio import write_json
    from picsift.label_app import LabelSettings
    from picsift.label_app import create_app as create_label_app
    from support.http_fuzz import label_bad_requests, server_bad_requests

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle, label_root, png = bundle_and_workspaces(work)

        def server() -> Any:
            settings = ServerSettings(
                bundle=bundle, workspace=work / "sws", api_key=KEY, max_request_bytes=1_000_000, max_batch_images=8
            )
            return create_server(settings)

        def label_app() -> Any:
            return create_label_app(LabelSettings(workspace=label_root, token=TOKEN, annotator="bench"))

        label_headers = {"X-Picsift-Token": TOKEN, "X-Picsift-Client": "bench"}
        fuzz = [
            run_app("model server", server(), "http://testserver", {"X-API-Key": KEY}, cases, args.seed),
            run_app(
                "labelling app",
                label_app(),
                "http://localhost",
                label_headers,
                cases,
                args.seed,
                negative_only=frozenset({"POST /api/jobs/train"}),  # a valid one starts a real training
            ),
        ]
        bad = [
            run_bad_requests("model server", server(), "http://localhost", server_bad_requests(png, KEY)),
            run_bad_requests("labelling app", label_app(), "http://localhost", label_bad_requests(TOKEN)),
        ]
    result = {
        "cases_per_operation_and_mode": cases,
        "seed": args.seed,
        "fuzz": fuzz,
        "bad_requests": bad,
        "machine": machine_info(),
    }
    dest = results_path("http_fuzz_bench", args.quick)
    write_json(dest, result)
    header = f"{'app':<14} {'operations':>10} {'cases':>7} {'5xx':>5} {'crashes':>8} {'schema viol.':>12} {'unclear 4xx':>11} {'s':>6}"
    print(f"Schemathesis, {cases} cases per operation and mode (positive, negative), seed {args.seed}")
    print(header)
    for r in fuzz:
        print(
            f"{r['app']:<14} {r['operations']:>10} {r['cases']:>7} {r['server_errors']:>5} {r['crashes']:>8} "
            f"{r['schema_violations']:>12} {r['unclear_messages']:>11} {r['seconds']:>6}"
        )
    print("\nHand-made bad requests (expected status and error code)")
    print(f"{'app':<14} {'requests':>8} {'answered otherwise':>18} {'5xx':>5}")
    for r in bad:
        print(f"{r['app']:<14} {r['requests']:>8} {r['answered_otherwise']:>18} {r['server_errors']:>5}")
    for r in fuzz + bad:
        for line in r["examples"]:
            print("  ", r["app"], line)
    print(f"\nwrote {dest.relative_to(REPO)}")


if __name__ == "__main__":
    main()
