"""picsift: build your own image classifier from a folder of pictures, end to end, and serve it."""

from __future__ import annotations

__version__ = "0.1.0"

from picsift.errors import (
    ConfigError,
    DatasetError,
    ImageDecodeError,
    ModelNotFoundError,
    PicsiftError,
    RunNotFoundError,
    WeightsNotAvailableError,
    WorkspaceError,
)

__all__ = [
    "ConfigError",
    "DatasetError",
    "ImageDecodeError",
    "ModelNotFoundError",
    "PicsiftError",
    "RunNotFoundError",
    "WeightsNotAvailableError",
    "WorkspaceError",
    "__version__",
]
