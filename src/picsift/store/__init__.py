"""Storage: the workspace folder and its SQLite catalog."""

from picsift.store.catalog import Catalog, ImageRow, LabelChange, LabelConflictError
from picsift.store.workspace import Workspace, default_workspace_path

__all__ = ["Catalog", "ImageRow", "LabelChange", "LabelConflictError", "Workspace", "default_workspace_path"]
