"""Storage: the workspace folder and its SQLite catalog."""

from picsift.store.catalog import Catalog, ImageRow, LabelConflictError, LabelWrite
from picsift.store.workspace import Workspace, default_workspace_path

__all__ = ["Catalog", "ImageRow", "LabelConflictError", "LabelWrite", "Workspace", "default_workspace_path"]
