"""Run the server with uvicorn: one process (the app object), or several workers (factory from env)."""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

from picsift.deploy.server.settings import SETTINGS_ENV, ServerSettings

# How long uvicorn's main process waits for a new worker to answer (each loads torch, ONNX Runtime and the model)
# before giving up a SIGHUP restart and keeping the old worker; uvicorn's own 5 s default gave up every time.
WORKER_READY_TIMEOUT_S = 60


def serve(
    settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "warning"
) -> None:
    """Serve the app with uvicorn on host:port until stopped; with workers > 1, each worker process builds the
    app from settings passed in $PICSIFT_SERVE_SETTINGS. ConfigError for invalid settings."""
    import uvicorn

    settings = dataclasses.replace(settings, host=host, workers=workers).with_env_key().validate()
    common: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "access_log": False}
    if workers > 1:
        # Each worker loads the bundle itself; metrics are per worker process.
        os.environ[SETTINGS_ENV] = settings.to_json()
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:  # where uvicorn has it
            common["timeout_worker_healthcheck"] = WORKER_READY_TIMEOUT_S
        uvicorn.run("picsift.deploy.server.app:create_app_from_env", factory=True, workers=workers, **common)
        return
    from picsift.deploy.server.app import create_app

    uvicorn.run(create_app(settings), **common)
