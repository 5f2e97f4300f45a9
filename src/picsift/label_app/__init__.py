"""The labelling web app: `create_app(LabelSettings(workspace=...))` -> a FastAPI app (JSON API + static UI)."""

from picsift.label_app.app import create_app
from picsift.label_app.settings import LabelSettings

__all__ = ["LabelSettings", "create_app"]
