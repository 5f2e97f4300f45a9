"""The cleaning stage's findings as the labelling app shows them: which images each finding names."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("picsift.label")

FINDINGS_FILE = "findings.json"


def load_findings(workspace_root: Path) -> list[dict[str, Any]]:
    """The findings in `workspace_root/findings.json` (a list, or {"findings": [...]}), each with `image_ids`.

    A finding naming one `image_id` gets `image_ids: [image_id]`; ids that are not integers are dropped.
    Returns [] when the file is absent or unreadable (logged): findings are advice, never a reason to fail.
    """
    path = workspace_root / FINDINGS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("ignoring unreadable %s", path)
        return []
    items = data.get("findings", []) if isinstance(data, dict) else data
    out = []
    for f in items if isinstance(items, list) else []:
        if not isinstance(f, dict):
            continue
        ids = f.get("image_ids")
        if ids is None and "image_id" in f:
            ids = [f["image_id"]]
        out.append({**f, "image_ids": [int(i) for i in ids or [] if str(i).lstrip("-").isdigit()]})
    return out


def findings_for(findings: list[dict[str, Any]], image_id: int) -> list[dict[str, Any]]:
    """The findings that name `image_id`."""
    return [f for f in findings if image_id in f["image_ids"]]
