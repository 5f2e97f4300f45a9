"""The REST server: `create_app(ServerSettings(bundle=...))`, and `serve(...)` to run it with uvicorn."""

from picsift.deploy.server.app import create_app
from picsift.deploy.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
