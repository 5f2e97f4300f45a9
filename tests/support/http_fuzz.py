"""Fuzzing picsift's web apps from their OpenAPI schemas with Schemathesis, in-process (ASGI, no port).

`fuzz_app` draws cases for every operation of an app's schema (positive and negative data), sends them with the
app's secret, and sorts what comes back: 5xx answers, crashes (the app or the transport raised), schema
violations (Schemathesis's status-code, content-type and response-schema checks) and unclear client errors
(a 4xx whose body is not `{"error": CODE, "detail": MESSAGE}` with a message a person can read). The tests run it
with a few cases per operation, bench/http_fuzz_bench.py with many more.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class FuzzReport:
    """What one app's fuzzing found: counts and, for each kind of finding, a line per example (capped)."""

    app: str
    operations: int = 0
    cases: int = 0
    seconds: float = 0.0
    server_errors: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    schema_violations: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)

    def findings(self) -> list[str]:
        """Every finding, one line each (empty when the app passed)."""
        return self.server_errors + self.crashes + self.schema_violations + self.unclear

    def summary(self) -> dict[str, Any]:
        """The counts, for a table or a JSON file."""
        return {
            "app": self.app,
            "operations": self.operations,
            "cases": self.cases,
            "server_errors": len(self.server_errors),
            "crashes": len(self.crashes),
            "schema_violations": len(self.schema_violations),
            "unclear_messages": len(self.unclear),
            "seconds": round(self.seconds, 1),
        }


def unclear_error(status: int, content_type: str, body: bytes) -> str | None:
    """Why a 4xx answer does not tell a person what went wrong, or None when it does: the body must be JSON
    `{"error": CODE, "detail": MESSAGE}` with a non-empty code and a readable message (a sentence, not a
    list of validator records)."""
    if not 400 <= status < 500:
        return None
    if "json" not in content_type:
        return f"content type {content_type!r}, not JSON"
    try:
        data = json.loads(body)
    except ValueError:
        return f"body is not JSON: {body[:80]!r}"
    if not isinstance(data, dict):
        return f"body is a {type(data).__name__}, not an object"
    code, detail = data.get("error"), data.get("detail")
    if not isinstance(code, str) or not code:
        return f"no 'error' code: {str(data)[:120]}"
    if not isinstance(detail, str) or len(detail.strip()) < 8:
        return f"no readable 'detail' message: {str(data)[:120]}"
    return None


def load_schema(app: Any, openapi: dict[str, Any]) -> Any:
    """A Schemathesis schema for `openapi` (the app's `app.openapi()`) that calls `app` in-process."""
    schema = schemathesis.openapi.from_dict(openapi)
    schema.app = app
    return schema


def _record(report: FuzzReport, label: str, case: Any, response: Any, base_url: str) -> None:
    status = response.status_code
    if status >= 500:
        report.server_errors.append(f"{label}: {status} {response.content[:200]!r}")
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):  # Schemathesis keeps every value of a header
        content_type = content_type[0] if content_type else ""
    why = unclear_error(status, content_type, response.content)
    if why is not None:
        report.unclear.append(f"{label}: {status} {why}")
    try:
        case.validate_response(response, checks=SCHEMA_CHECKS)
    except FailureGroup as group:
        for failure in group.exceptions:
            report.schema_violations.append(f"{label}: {status} {_failure_text(failure)}")
    except Failure as failure:
        report.schema_violations.append(f"{label}: {status} {_failure_text(failure)}")


def _failure_text(failure: Any) -> str:
    return " ".join(str(getattr(failure, "title", "") or failure).split())[:300]


def fuzz_app(
    name: str,
    app: Any,
    openapi: dict[str, Any],
    *,
    base_url: str,
    headers: dict[str, str],
    max_examples: int,
    seed: int = 0,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    negative_only: frozenset[str] = frozenset(),
) -> FuzzReport:
    """Fuzz every operation of `app` with `max_examples` cases per generation mode; `headers` (the secret, the
    page's client header) go with every request, to `base_url` (a host name the app answers). Operations in
    `negative_only` ("POST /api/jobs/train") get invalid data only: a valid request would start real work."""
    report = FuzzReport(name)
    schema = load_schema(app, openapi)
    start = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        label = f"{operation.method.upper()} {operation.path}"
        for mode in modes:
            if mode == GenerationMode.POSITIVE and label in negative_only:
                continue
            _fuzz_operation(
                report, label, operation.as_strategy(generation_mode=mode), base_url, headers, max_examples, seed
            )
    report.seconds = time.perf_counter() - start
    return report


def _fuzz_operation(
    report: FuzzReport, label: str, strategy: Any, base_url: str, headers: dict[str, str], max_examples: int, seed: int
) -> None:
    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.seed(seed)
    @given(case=strategy)
    def run(case: Any) -> None:
        report.cases += 1
        try:
            response = case.call(base_url=base_url, headers=headers)
        except Exception as e:  # the app (or the transport talking to it) raised: a crash
            report.crashes.append(f"{label}: {type(e).__name__}: {e}")
            return
        _record(report, label, case, response, base_url)

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no parameters, in negative mode)
        run()
