"""Whether a catalogued image's file (or object) is still there and readable: one stat, no decoding."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from picsift.data.storage import is_remote, missing_objects

MISSING = "missing on disk"


def file_problem(path: str | Path) -> str | None:
    """None when `path` is a regular file this process can read, else why not (one short phrase). A URL is
    looked up in its object store (`picsift.data.storage.missing_objects`)."""
    if is_remote(str(path)):
        return missing_objects([str(path)]).get(str(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return MISSING
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file any more"
    if not os.access(path, os.R_OK):
        return "cannot be read: permission denied"
    return None
