"""Which `Host` header a picsift web app answers: the defence against DNS rebinding.

A page on `http://evil.example` whose name is re-pointed at 127.0.0.1 can make the browser send requests to
an app on the loopback interface; they arrive with `Host: evil.example`. An app that answers only the names
it is really reached by (loopback names by default, plus an allow-list) refuses them with 421.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any

from picsift.web.errors import error_response

log = logging.getLogger("picsift.web")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
ANY_HOST = "*"


def is_loopback(bind: str) -> bool:
    """Whether the interface `bind` (a name or an address) is the loopback interface only."""
    if bind.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str | None:
    """The name in a Host header, lower case, without port: "Example.org:80" -> "example.org",
    "[::1]:8765" -> "::1". None for an empty or malformed value."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return value[1:end] or None
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _machine_names() -> set[str]:
    """This machine's host name, full name and addresses (what a client on the network may type)."""
    names: set[str] = set()
    try:
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        _, aliases, addresses = socket.gethostbyname_ex(hostname)
        names |= set(aliases) | set(addresses)
    except OSError:
        pass
    return {n.lower() for n in names if n}


def allowed_host_names(bind: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The Host names an app bound to the interface `bind` answers; None means any ("*" in `extra`).

    Always the loopback names and `extra`; bound beyond loopback also the bound address itself, or for a
    wildcard bind ("0.0.0.0", "::") this machine's host names and addresses.
    """
    extra = [e.strip().lower().strip("[]") for e in extra if e.strip()]
    if ANY_HOST in extra:
        return None
    names = set(LOOPBACK_NAMES) | set(extra)
    if not is_loopback(bind):
        names |= _machine_names() if bind in WILDCARD_BINDS else {bind.lower().strip("[]")}
    return frozenset(names)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_origin(headers: dict[bytes, bytes], method: str) -> str | None:
    """The Origin of a state-changing request sent from another site (a browser adds Origin to every cross-site
    POST; "null" from sandboxed frames and local files counts as another site), else None. Requests without
    Origin (scripts, curl, picsift's client) and same-origin ones pass."""
    if method in SAFE_METHODS:
        return None
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    if not origin:
        return None
    _, _, origin_host = origin.partition("://")
    if origin_host.rstrip("/").lower() == headers.get(b"host", b"").decode("latin-1").lower():
        return None
    return origin


class HostCheck:
    """Pure ASGI middleware, before any route runs: a request whose Host header names none of `allowed` gets
    421 (`error: host_not_allowed`; `allowed` None: every host); with `same_origin_writes`, a state-changing
    request from another site's page gets 403 (`error: cross_origin`, a guard against CSRF). `open_paths` are
    answered whatever the host (a liveness probe)."""

    def __init__(
        self,
        app: Any,
        allowed: frozenset[str] | None,
        option: str = "--allowed-host",
        open_paths: Iterable[str] = (),
        same_origin_writes: bool = False,
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.option = option
        self.open_paths = frozenset(open_paths)
        self.same_origin_writes = same_origin_writes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"host", b"").decode("latin-1")
        name = host_name(raw)
        if self.allowed is not None and (name is None or name not in self.allowed):
            shown = raw or "(none)"
            log.warning("refused a request for host %r (allowed: %s)", shown, ", ".join(sorted(self.allowed)))
            detail = (
                f"host {shown!r} is not served here (this guards against DNS rebinding); "
                f"to reach the app by that name start it with {self.option} {name or 'NAME'}"
            )
            await self._refuse(scope, receive, send, 421, "host_not_allowed", detail)
            return
        origin = cross_site_origin(headers, scope.get("method", "")) if self.same_origin_writes else None
        if origin is not None:
            detail = f"refused a {scope.get('method')} request from a page of another site ({origin})"
            await self._refuse(scope, receive, send, 403, "cross_origin", detail)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any], receive: Any, send: Any, status: int, code: str, detail: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await error_response(status, code, detail)(scope, receive, send)
