"""Fuzzing picsift's web apps from their OpenAPI schemas with Schemathesis, in-process (ASGI, no port).

`fuzz_app` draws cases for every operation of an app's schema (positive and negative data), sends them with the
app's secret, and sorts what comes back: 5xx answers, crashes (the app or the transport raised), schema
violations (Schemathesis's status-code, content-type and response-schema checks) and unclear client errors
(a 4xx whose body is not `{"error": CODE, "detail": MESSAGE}` with a message a person can read). The tests run it
with a few cases per operation, bench/http_fuzz_bench.py with many more.
"""

from __future__ import annotations

import base64
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


# ---- hand-made bad requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRequest:
    """A request no schema-driven generator writes, and the answer expected: `status` and error `code`."""

    name: str
    method: str
    path: str
    kwargs: dict[str, Any]
    status: int
    code: str


def send_bad_requests(client: Any, cases: list[BadRequest]) -> list[str]:
    """Send each case with `client` (a TestClient or httpx client); one line per case answered otherwise than
    expected, or unclearly (see `unclear_error`)."""
    wrong = []
    for case in cases:
        r = client.request(case.method, case.path, **case.kwargs)
        why = unclear_error(r.status_code, r.headers.get("content-type", ""), r.content)
        code = r.json().get("error") if why is None and r.status_code >= 400 else ""
        if why is not None or (r.status_code, code) != (case.status, case.code):
            wrong.append(f"{case.name}: {case.method} {case.path} -> {r.status_code} {r.text[:200]}")
    return wrong


def truncated_multipart(field: str, data: bytes, boundary: str = "picsiftcut") -> tuple[bytes, str]:
    """A multipart body cut in the middle of its file part (no closing boundary), and its content type."""
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="a.png"\r\n\r\n'.encode()
    return head + data[: len(data) // 2], f"multipart/form-data; boundary={boundary}"


def server_bad_requests(png: bytes, key: str) -> list[BadRequest]:
    """Bad bodies for the model server: wrong content types, cut and malformed multipart, huge and deep JSON,
    NaN/Infinity, wrong types, missing fields, non-UTF-8 bytes and path-like names."""
    b64 = base64.b64encode(png).decode()
    auth = {"X-API-Key": key}
    jh = {**auth, "content-type": "application/json"}
    cut, cut_type = truncated_multipart("file", png)

    def raw(body: bytes | str, headers: dict[str, str] = jh) -> dict[str, Any]:
        return {"content": body.encode() if isinstance(body, str) else body, "headers": headers}

    deep = "[" * 100_000 + "]" * 100_000
    P, B, F, R = "/v1/predict", "/v1/predict/batch", "/v1/feedback", "/v1/admin/reload"
    return [
        BadRequest("no key", "POST", P, {"json": {"image": b64}}, 401, "missing_api_key"),
        BadRequest(
            "text/plain", "POST", P, raw(b64, {**auth, "content-type": "text/plain"}), 415, "unsupported_content_type"
        ),
        BadRequest(
            "image/png body",
            "POST",
            P,
            raw(png, {**auth, "content-type": "image/png"}),
            415,
            "unsupported_content_type",
        ),
        BadRequest("no content type", "POST", P, raw(png, auth), 415, "unsupported_content_type"),
        BadRequest(
            "multipart without boundary",
            "POST",
            P,
            raw(b"x", {**auth, "content-type": "multipart/form-data"}),
            400,
            "invalid_multipart",
        ),
        BadRequest(
            "multipart cut short", "POST", P, raw(cut, {**auth, "content-type": cut_type}), 422, "missing_field"
        ),
        BadRequest(
            "cut image",
            "POST",
            P,
            {"files": {"file": ("a.png", png[: len(png) // 2])}, "headers": auth},
            422,
            "undecodable_image",
        ),
        BadRequest("not JSON", "POST", P, raw("{oops"), 400, "invalid_json"),
        BadRequest("non-UTF-8 JSON", "POST", P, raw(b'{"image": "\xff\xfe"}'), 400, "invalid_json"),
        BadRequest("deeply nested JSON", "POST", P, raw(deep), 400, "invalid_json"),
        BadRequest("JSON array", "POST", P, raw("[1, 2]"), 422, "invalid_json"),
        BadRequest("missing image", "POST", P, {"json": {"top_k": 1}, "headers": auth}, 422, "missing_field"),
        BadRequest("image a number", "POST", P, {"json": {"image": 7}, "headers": auth}, 422, "missing_field"),
        BadRequest(
            "image not base64",
            "POST",
            P,
            {"json": {"image": "../../etc/passwd"}, "headers": auth},
            400,
            "invalid_base64",
        ),
        BadRequest("top_k Infinity", "POST", P, raw(f'{{"image": "{b64}", "top_k": Infinity}}'), 422, "invalid_top_k"),
        BadRequest("top_k NaN", "POST", P, raw(f'{{"image": "{b64}", "top_k": NaN}}'), 422, "invalid_top_k"),
        BadRequest(
            "top_k 2.5", "POST", P, {"json": {"image": b64, "top_k": 2.5}, "headers": auth}, 422, "invalid_top_k"
        ),
        BadRequest(
            "top_k true", "POST", P, {"json": {"image": b64, "top_k": True}, "headers": auth}, 422, "invalid_top_k"
        ),
        BadRequest(
            "top_k 5000 digits",
            "POST",
            P,
            {"json": {"image": b64, "top_k": "9" * 5000}, "headers": auth},
            422,
            "invalid_top_k",
        ),
        BadRequest(
            "top_k -1 query", "POST", P + "?top_k=-1", {"json": {"image": b64}, "headers": auth}, 422, "invalid_top_k"
        ),
        BadRequest(
            "top_k text query",
            "POST",
            P + "?top_k=abc",
            {"json": {"image": b64}, "headers": auth},
            422,
            "invalid_parameter",
        ),
        BadRequest(
            "huge body", "POST", P, {"json": {"image": "A" * 2_000_000}, "headers": auth}, 413, "request_too_large"
        ),
        BadRequest(
            "batch Infinity", "POST", B, raw(f'{{"images": ["{b64}"], "top_k": Infinity}}'), 422, "invalid_top_k"
        ),
        BadRequest(
            "batch images a string", "POST", B, {"json": {"images": b64}, "headers": auth}, 422, "missing_field"
        ),
        BadRequest("batch deep JSON", "POST", B, raw(deep), 400, "invalid_json"),
        BadRequest(
            "batch too many", "POST", B, {"json": {"images": [b64] * 9}, "headers": auth}, 413, "too_many_images"
        ),
        BadRequest("feedback deep JSON", "POST", F, raw(deep), 400, "invalid_json"),
        BadRequest("feedback no label", "POST", F, {"json": {"image": b64}, "headers": auth}, 422, "missing_field"),
        BadRequest("feedback label NaN", "POST", F, raw(f'{{"image": "{b64}", "label": NaN}}'), 422, "invalid_field"),
        BadRequest(
            "feedback label a list",
            "POST",
            F,
            {"json": {"image": b64, "label": ["a"]}, "headers": auth},
            422,
            "invalid_field",
        ),
        BadRequest(
            "feedback label huge",
            "POST",
            F,
            {"json": {"image": b64, "label": "x" * 100_000}, "headers": auth},
            422,
            "invalid_field",
        ),
        BadRequest(
            "feedback id a list",
            "POST",
            F,
            {"json": {"prediction_id": ["x"], "label": "1"}, "headers": auth},
            422,
            "invalid_field",
        ),
        BadRequest(
            "feedback id ../",
            "POST",
            F,
            {"json": {"prediction_id": "../../x", "label": "1"}, "headers": auth},
            404,
            "unknown_prediction",
        ),
        BadRequest(
            "feedback id %2e%2e",
            "POST",
            F,
            {"json": {"prediction_id": "%2e%2e/%2e%2e", "label": "1"}, "headers": auth},
            404,
            "unknown_prediction",
        ),
        BadRequest(
            "feedback not an image",
            "POST",
            F,
            {"files": {"file": ("a.png", b"%PDF-1.4")}, "data": {"label": "1"}, "headers": auth},
            415,
            "not_an_image",
        ),
        BadRequest("reload deep JSON", "POST", R, raw(deep), 400, "invalid_json"),
        BadRequest("reload bundle a number", "POST", R, {"json": {"bundle": 5}, "headers": auth}, 422, "invalid_field"),
        BadRequest(
            "reload bundle NUL", "POST", R, {"json": {"bundle": "a\x00b"}, "headers": auth}, 422, "invalid_field"
        ),
        BadRequest(
            "reload ../", "POST", R, {"json": {"bundle": "../../../../etc"}, "headers": auth}, 409, "reload_failed"
        ),
        BadRequest(
            "reload %2e%2e", "POST", R, {"json": {"bundle": "%2e%2e/%2e%2e"}, "headers": auth}, 409, "reload_failed"
        ),
        BadRequest("reload absolute", "POST", R, {"json": {"bundle": "/etc"}, "headers": auth}, 409, "reload_failed"),
        BadRequest("no such route", "GET", "/v1/nothing", {"headers": auth}, 404, "not_found"),
        BadRequest("wrong method", "DELETE", P, {"headers": auth}, 405, "method_not_allowed"),
    ]


def label_bad_requests(token: str) -> list[BadRequest]:
    """Bad requests for the labelling app: ids negative, huge or text, path-like names, NUL, non-UTF-8, deep
    JSON, NaN, wrong types and missing fields."""
    auth = {"X-Picsift-Token": token, "X-Picsift-Client": "fuzz"}
    jh = {**auth, "content-type": "application/json"}

    def raw(body: bytes | str, headers: dict[str, str] = jh) -> dict[str, Any]:
        return {"content": body.encode() if isinstance(body, str) else body, "headers": headers}

    def js(body: Any) -> dict[str, Any]:
        return {"json": body, "headers": auth}

    big = 2**70
    L = "/api/labels"
    return [
        BadRequest("no token", "GET", "/api/summary", {}, 401, "missing_token"),
        BadRequest("no client header", "POST", L, {"json": {"image_ids": [1], "label": "0"}}, 401, "missing_token"),
        BadRequest("image id negative", "GET", "/api/images/-1", {"headers": auth}, 422, "invalid_parameter"),
        BadRequest("image id huge", "GET", f"/api/images/{big}", {"headers": auth}, 422, "invalid_parameter"),
        BadRequest("image id text", "GET", "/api/images/abc", {"headers": auth}, 422, "invalid_parameter"),
        BadRequest("image id unknown", "GET", "/api/images/999999", {"headers": auth}, 404, "NotFoundError"),
        BadRequest("thumb id huge", "GET", f"/api/images/{big}/thumb", {"headers": auth}, 422, "invalid_parameter"),
        BadRequest(
            "feedback image id huge", "GET", f"/api/feedback/{big}/image", {"headers": auth}, 422, "invalid_parameter"
        ),
        BadRequest("job id huge", "GET", f"/api/jobs/{big}", {"headers": auth}, 404, "not_found"),
        BadRequest("ids filter huge", "GET", f"/api/images?ids=1,{big}", {"headers": auth}, 404, "NotFoundError"),
        BadRequest("ids filter text", "GET", "/api/images?ids=1,x", {"headers": auth}, 400, "ConfigError"),
        BadRequest("limit negative", "GET", "/api/images?limit=-1", {"headers": auth}, 422, "invalid_parameter"),
        BadRequest("offset negative", "GET", "/api/images?offset=-5", {"headers": auth}, 422, "invalid_parameter"),
        BadRequest("run ../", "GET", "/api/queue?run=../../etc", {"headers": auth}, 404, "RunNotFoundError"),
        BadRequest(
            "run %2e%2e", "GET", "/api/images?run=%252e%252e%252f%252e%252e", {"headers": auth}, 404, "RunNotFoundError"
        ),
        BadRequest("run NUL", "GET", "/api/images?run=%00", {"headers": auth}, 404, "RunNotFoundError"),
        BadRequest(
            "run name too long", "GET", "/api/queue?run=" + "r" * 300, {"headers": auth}, 404, "RunNotFoundError"
        ),
        BadRequest("static name too long", "GET", "/static/" + "a" * 300 + ".js", {"headers": auth}, 404, "not_found"),
        BadRequest("static NUL", "GET", "/static/%00.js", {"headers": auth}, 404, "not_found"),
        BadRequest("static ../", "GET", "/static/..%2f..%2fapp.py", {"headers": auth}, 404, "not_found"),
        BadRequest("static absolute", "GET", "/static//etc/passwd", {"headers": auth}, 404, "not_found"),
        BadRequest("label ids huge", "POST", L, js({"image_ids": [big], "label": "0"}), 422, "invalid_parameter"),
        BadRequest("label ids text", "POST", L, js({"image_ids": ["one"], "label": "0"}), 422, "invalid_parameter"),
        BadRequest("label ids negative", "POST", L, js({"image_ids": [-1], "label": "0"}), 422, "invalid_parameter"),
        BadRequest("label unknown id", "POST", L, js({"image_ids": [999999], "label": "0"}), 404, "NotFoundError"),
        BadRequest("label NaN", "POST", L, raw('{"image_ids": [1], "label": NaN}'), 422, "invalid_parameter"),
        BadRequest(
            "version huge",
            "POST",
            L,
            js({"image_ids": [1], "label": "0", "expected_versions": {"1": big}}),
            422,
            "invalid_parameter",
        ),
        BadRequest("missing fields", "POST", L, js({}), 422, "invalid_parameter"),
        BadRequest("no body", "POST", L, {"headers": auth}, 422, "invalid_parameter"),
        BadRequest("non-UTF-8", "POST", L, raw(b'{"image_ids": [1], "label": "\xff"}'), 400, "bad_request"),
        BadRequest("not JSON", "POST", L, raw("{oops"), 422, "invalid_parameter"),
        BadRequest("deep JSON", "POST", L, raw("[" * 100_000), 400, "bad_request"),
        BadRequest(
            "text/plain",
            "POST",
            L,
            raw('{"image_ids": [1], "label": "0"}', {**auth, "content-type": "text/plain"}),
            422,
            "invalid_parameter",
        ),
        BadRequest(
            "class ../", "POST", "/api/classes/rename", js({"old": "../../etc", "new": "x"}), 400, "WorkspaceError"
        ),
        BadRequest("class a number", "POST", "/api/classes", js({"name": 5}), 422, "invalid_parameter"),
        BadRequest("action id huge", "POST", "/api/exclusions/undo", js({"action_id": big}), 422, "invalid_parameter"),
        BadRequest("exclude unknown", "POST", "/api/exclusions", js({"image_ids": [999999]}), 404, "NotFoundError"),
        BadRequest("proposal ids huge", "POST", "/api/proposals/accept", js({"ids": [big]}), 422, "invalid_parameter"),
        BadRequest("feedback ids text", "POST", "/api/feedback/accept", js({"ids": ["x"]}), 422, "invalid_parameter"),
        BadRequest(
            "threshold NaN",
            "POST",
            "/api/jobs/autolabel",
            raw('{"method": "model", "threshold": NaN}'),
            422,
            "invalid_parameter",
        ),
        BadRequest("threshold 2", "POST", "/api/jobs/autolabel", js({"threshold": 2}), 422, "invalid_parameter"),
        BadRequest("method unknown", "POST", "/api/jobs/autolabel", js({"method": "../x"}), 422, "invalid_parameter"),
        BadRequest("epochs 0", "POST", "/api/jobs/train", js({"epochs": 0}), 400, "ConfigError"),
        BadRequest("epochs text", "POST", "/api/jobs/train", js({"epochs": "many"}), 422, "invalid_parameter"),
        BadRequest(
            "undo version negative",
            "POST",
            "/api/images/1/undo",
            js({"expected_version": -3}),
            422,
            "invalid_parameter",
        ),
        BadRequest("no such route", "GET", "/api/nothing", {"headers": auth}, 404, "not_found"),
        BadRequest("wrong method", "DELETE", L, {"headers": auth}, 405, "method_not_allowed"),
    ]
