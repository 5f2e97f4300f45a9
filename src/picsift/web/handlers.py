"""The exception handlers of every picsift web app: whatever goes wrong, the answer is `{"error", "detail"}`.

Typed errors map to statuses through `picsift.web.errors`; FastAPI's validation errors (a parameter or a body
field of the wrong type, a JSON body that does not parse) become one 422 sentence naming each field, instead
of FastAPI's list of validator records; Starlette's HTTP errors (no such route, method not allowed, a body that
cannot be parsed) keep their status and get a code and a message; a write that failed for a full or read-only
disk is a 507 naming the file; anything else is a 500 whose details go to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from picsift.errors import PicsiftError
from picsift.web.errors import ApiError, disk_error_response, error_response, picsift_error_response
from picsift.web.responses import StrictJSONResponse

log = logging.getLogger("picsift.web")

MAX_PROBLEMS = 5  # fields named in one validation message
MAX_PART = 200  # characters of one field's message
UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's words for a body it cannot read


def validation_message(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one sentence: "body.image_ids.0: Input should be a valid integer; ...";
    a body that is not JSON: "the body is not valid JSON (REASON)". The values sent are not repeated."""
    parts = []
    for err in errors[:MAX_PROBLEMS]:
        loc = [str(x) for x in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON ({reason})" if reason else "the body is not valid JSON")
        elif loc == ["body"] and err.get("type") == "missing":
            parts.append("a JSON body is required")
        else:
            parts.append(f"{'.'.join(loc)}: {err.get('msg')}"[:MAX_PART])
    more = len(errors) - MAX_PROBLEMS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "") if parts else "invalid request"


def _code(status: int) -> str:
    """ "not_found" for 404: the status's phrase as a code."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return f"http_{status}"


def http_error_message(request: Request, status: int, detail: Any) -> str:
    """The message for a Starlette HTTP error: its own detail when it says more than the status's phrase."""
    text = detail if isinstance(detail, str) else str(detail)
    if text == UNPARSABLE_BODY:
        return (
            "the request body cannot be read as JSON (not UTF-8 text, or nested too deeply): send a JSON object "
            "with Content-Type: application/json"
        )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    if not text or text == phrase:
        return f"{request.method} {request.url.path}: {(phrase or f'HTTP {status}').lower()}"
    return text


def install_error_handlers(
    app: FastAPI, *, invalid_input: int = 400, count: Callable[[str], None] | None = None
) -> None:
    """Answer every error of `app` with `{"error": CODE, "detail": MESSAGE}`.

    `invalid_input`: the status of a bad setting or an undecodable image (`picsift.web.errors.http_status`);
    `count(code)`: called for each client error raised as an `ApiError` or a validation error (metrics).
    """

    def counted(code: str) -> None:
        if count is not None:
            count(code)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> StrictJSONResponse:
        if e.status < 500:
            counted(e.code)
        return error_response(e.status, e.code, e.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, e: RequestValidationError) -> StrictJSONResponse:
        counted("invalid_parameter")
        return error_response(422, "invalid_parameter", validation_message(e.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> StrictJSONResponse:
        response = error_response(
            e.status_code, _code(e.status_code), http_error_message(request, e.status_code, e.detail)
        )
        response.headers.update(e.headers or {})
        return response

    @app.exception_handler(PicsiftError)
    async def picsift_error(_: Request, e: PicsiftError) -> StrictJSONResponse:
        return picsift_error_response(e, invalid_input=invalid_input)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> StrictJSONResponse:
        full = disk_error_response(e)  # a full or read-only disk (an OSError, SQLite, torch): 507 naming the file
        if full is not None:
            log.error("%s", bytes(full.body).decode())
            return full
        log.error("unexpected error", exc_info=e)
        return error_response(500, "internal_error", f"{type(e).__name__}: the server logged the details")
