"""The one secret check of picsift's web apps: an API key (model server) or an access token (labelling app)."""

from __future__ import annotations

import hmac

from fastapi import Request

from picsift.web.errors import ApiError


def presented_secret(
    request: Request, *, header: str, query: str | None = None, cookie: str | None = None
) -> str | None:
    """The secret a request carries: the `header`, else the `query` parameter, else the `cookie`, else
    `Authorization: Bearer SECRET`; None when it carries none (an empty value counts as none)."""
    given = (
        request.headers.get(header)
        or (request.query_params.get(query) if query else None)
        or (request.cookies.get(cookie) if cookie else None)
    )
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return given or None


def require_secret(
    request: Request,
    expected: str | None,
    *,
    name: str,
    header: str,
    query: str | None = None,
    cookie: str | None = None,
    missing_message: str,
    invalid_message: str,
) -> None:
    """Raise ApiError 401 (`missing_NAME` or `invalid_NAME`) unless the request presents `expected`.

    No check when `expected` is None. The comparison takes constant time (hmac.compare_digest on UTF-8 bytes,
    so a non-ASCII guess is refused like any other).
    """
    if expected is None:
        return
    given = presented_secret(request, header=header, query=query, cookie=cookie)
    if given is None:
        raise ApiError(401, f"missing_{name}", missing_message)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, f"invalid_{name}", invalid_message)
