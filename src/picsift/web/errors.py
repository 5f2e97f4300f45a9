"""One mapping from picsift's typed errors to HTTP responses, for every picsift web app.

A route raises a typed error from `picsift.errors` (or an `ApiError` when it speaks HTTP itself); the app's
exception handlers (`picsift.web.handlers`) turn either into one JSON body, `{"error": CODE, "detail": MESSAGE}`,
which the apps' OpenAPI schemas declare as `ErrorBody` (`error_responses`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict

from picsift.errors import (
    ConfigError,
    ConflictError,
    DiskError,
    ImageDecodeError,
    NotFoundError,
    PicsiftError,
    RunNotFoundError,
    disk_error,
)
from picsift.web.responses import StrictJSONResponse


class ApiError(Exception):
    """A client error with an HTTP status, a stable code and an actionable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorBody(BaseModel):
    """The body of every error answer: a stable code and a message for a person. Some answers add fields
    (a 409 of the labelling app lists the conflicts)."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries declaring `statuses` as answered with an `ErrorBody`."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def http_status(exc: PicsiftError, *, invalid_input: int = 400) -> int:
    """The HTTP status for a typed error: 409 conflict, 404 not found, `invalid_input` for a bad setting or an
    undecodable image (the model server answers 422, the labelling app 400), 507 when the disk is full or
    read-only (the write was not made: retry once there is room), else 400."""
    if isinstance(exc, DiskError):
        return 507
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, (NotFoundError, RunNotFoundError)):
        return 404
    if isinstance(exc, (ConfigError, ImageDecodeError)):
        return invalid_input
    return 400


def error_response(status: int, code: str, message: str) -> StrictJSONResponse:
    """The JSON error body every picsift web app answers with; a 401 also names the Bearer scheme."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return StrictJSONResponse({"error": code, "detail": message}, status_code=status, headers=headers)


def picsift_error_response(exc: PicsiftError, *, invalid_input: int = 400) -> StrictJSONResponse:
    """A typed error as a response: its class name is the code, its message the detail."""
    return error_response(http_status(exc, invalid_input=invalid_input), type(exc).__name__, str(exc))


def conflict_response(body: dict[str, Any], code: str) -> StrictJSONResponse:
    """409 for a request done only in part: `body` (what was done, the conflicts and a "detail" saying why)
    with the error `code`, so it reads like every other error answer."""
    return StrictJSONResponse({"error": code, **body}, status_code=409)


def disk_error_response(exc: Exception) -> StrictJSONResponse | None:
    """507 with one line naming the file when `exc` is a write that failed for a full disk or a read-only file
    system (whatever raised it: an OSError, SQLite, torch); None for any other error."""
    full = disk_error(exc)
    return None if full is None else picsift_error_response(full)
