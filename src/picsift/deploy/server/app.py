"""The FastAPI app factory. Nothing is created at import time; `create_app(settings)` builds it all."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from picsift.deploy.server.inputs import BodyTooLarge
from picsift.deploy.server.routers import admin, docs, feedback, health, metrics, model, predict
from picsift.deploy.server.settings import SETTINGS_ENV, ServerSettings
from picsift.deploy.server.state import ServerState
from picsift.errors import ConfigError, PicsiftError
from picsift.version import __version__
from picsift.web.errors import ApiError, disk_error_response, error_response, picsift_error_response
from picsift.web.hosts import HostCheck
from picsift.web.responses import StrictJSONResponse

log = logging.getLogger("picsift.serve")


class LimitsAndMetrics:
    """Pure ASGI middleware: request body cap (413 before reading) and per-route request metrics."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        limit = self.state.settings.max_request_bytes
        status = [500]

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                err = BodyTooLarge(limit)
                self.state.metrics.input_errors.labels(code=err.code).inc()
                await error_response(err.status, err.code, err.message)(scope, receive, send_wrapper)
                return
            seen = [0]

            async def limited_receive() -> dict[str, Any]:
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            m = self.state.metrics
            m.requests.labels(method=scope.get("method", ""), route=route, status=str(status[0])).inc()
            m.latency.labels(route=route).observe(time.perf_counter() - t0)


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app for one bundle. The model loads at startup (lifespan), before /readyz says ready."""
    settings = settings.with_env_key().validate()
    state = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        loop = asyncio.get_running_loop()
        hup = _install_sighup(loop, state)
        try:
            yield
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            await state.stop()

    app = FastAPI(
        title="picsift model server",
        description="Image classification with an exported picsift bundle: predict, feedback, metrics.",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=StrictJSONResponse,  # NaN in a metric -> null, never a 500
    )
    app.state.settings = settings
    app.state.server = state
    for r in (health.router, predict.router, model.router, feedback.router, admin.router, metrics.router, docs.router):
        app.include_router(r)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> StrictJSONResponse:
        if e.status < 500:
            state.metrics.input_errors.labels(code=e.code).inc()
        return error_response(e.status, e.code, e.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, e: RequestValidationError) -> StrictJSONResponse:
        parts = [f"{'.'.join(str(x) for x in err.get('loc', []))}: {err.get('msg')}" for err in e.errors()]
        state.metrics.input_errors.labels(code="invalid_parameter").inc()
        return error_response(422, "invalid_parameter", "; ".join(parts) or "invalid request")

    @app.exception_handler(PicsiftError)
    async def picsift_error(_: Request, e: PicsiftError) -> StrictJSONResponse:
        return picsift_error_response(e, invalid_input=422)  # this API's convention: unusable input is 422

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> StrictJSONResponse:
        full = disk_error_response(e)  # a full or read-only disk: 507 naming the file, the write was not made
        if full is not None:
            log.error("%s", bytes(full.body).decode())
            return full
        log.exception("unexpected error")
        return error_response(500, "internal_error", f"{type(e).__name__}: the server logged the details")

    app.add_middleware(LimitsAndMetrics, state=state)
    # Outermost: a request for a host this server is not reached by (DNS rebinding), or a POST from another
    # site's page (CSRF: a form posting feedback or a reload to a key-less server on localhost), is refused first.
    app.add_middleware(HostCheck, allowed=settings.answered_hosts(), open_paths=("/healthz",), same_origin_writes=True)
    return app


def _install_sighup(loop: asyncio.AbstractEventLoop, state: ServerState) -> bool:
    """SIGHUP reloads the bundle (the main thread of a Unix process only)."""

    def on_hup() -> None:
        async def reload() -> None:
            try:
                result = await state.reload()
                log.warning("SIGHUP: now serving %s (was %s)", result["version"], result["previous_version"])
            except Exception as e:
                log.error("SIGHUP reload failed, still serving the previous model: %s", e)

        loop.create_task(reload())

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        return True
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        return False


def _version() -> str:
    return __version__


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory` with several worker processes: settings come as JSON in the environment."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise ConfigError(f"${SETTINGS_ENV} is not set")
    return create_app(ServerSettings.from_json(text))


__all__ = ["create_app", "create_app_from_env"]
