"""Storage: the workspace folder and its catalog (SQLite in the folder, or a PostgreSQL database)."""

from picsift.store.catalog import Catalog, ImageRow, LabelChange, LabelConflictError, LabelWrite
from picsift.store.workspace import Workspace, default_workspace_path, is_workspace

__all__ = [
    "Catalog",
    "ImageRow",
    "LabelChange",
    "LabelConflictError",
    "LabelWrite",
    "Workspace",
    "default_workspace_path",
    "is_workspace",
]
