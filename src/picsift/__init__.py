"""picsift: build your own image classifier from a folder of pictures, end to end, and serve it."""

from __future__ import annotations

from picsift.errors import (
    ConfigError,
    DatasetError,
    ImageDecodeError,
    LabelError,
    ModelNotFoundError,
    PicsiftError,
    RunCorruptError,
    RunError,
    RunNotFoundError,
    UnsafePathError,
    WeightsNotAvailableError,
    WorkspaceError,
)
from picsift.version import __version__

__all__ = [
    "ConfigError",
    "DatasetError",
    "ImageDecodeError",
    "LabelError",
    "ModelNotFoundError",
    "PicsiftError",
    "RunCorruptError",
    "RunError",
    "RunNotFoundError",
    "UnsafePathError",
    "WeightsNotAvailableError",
    "Client",
    "WorkspaceError",
    "__version__",
    "import_images",
    "status",
    "train_model",
    "evaluate_run",
    "predict",
    "clean",
    "list_models",
    "create_model",
    "Workspace",
]

# Not `train`/`evaluate`: those names are the stage subpackages (picsift.train.run(cfg) etc.).
_LAZY_API = ("import_images", "status", "train_model", "evaluate_run", "predict", "clean")


def __getattr__(name: str) -> object:
    # Lazy: `import picsift` loads neither the API nor the libraries its stages need until a name is used.
    if name == "Client":
        from picsift.deploy.client import Client

        return Client
    if name in ("list_models", "create_model"):
        from picsift import models

        return getattr(models, name)
    if name == "Workspace":
        from picsift.store import Workspace

        return Workspace
    if name in _LAZY_API:
        from picsift import api

        return getattr(api, name)
    raise AttributeError(f"module 'picsift' has no attribute {name!r}")
