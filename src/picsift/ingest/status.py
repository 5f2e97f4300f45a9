"""What a workspace holds: images, classes, counts per split and class, problems, past imports."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from picsift.data.storage import is_remote, missing_objects
from picsift.store import Workspace
from picsift.store.schema import Image, ImportRecord


def status(workspace: str | Path | None = None) -> dict[str, Any]:
    """The catalog summary plus per-split/class counts, where images came from, and past imports.

    Keys: workspace, images, readable, unreadable (list of {path, reason}), missing (readable rows whose
    file is gone from disk, or object from object storage: moved or deleted since import), labeled, unlabeled, exact_duplicates,
    excluded, exclusions ({reason: n}, active), exclusion_actions ({action id: n}: what `clean --undo ID` restores),
    classes (declared or in use), empty_classes (declared, no image has
    the label: a class named in the labelling app or by feedback, or whose images were relabelled), splits ({split: {class: n}}, readable and not
    excluded), split_origins, sources ({kind: n}), imports (list), catalog_hash, catalog (its database URL,
    password masked).
    """
    ws = Workspace.open(workspace)
    try:
        catalog = ws.catalog
        summary = catalog.summary()
        with catalog.session() as s:
            sources = Counter(
                {
                    kind: int(n)
                    for kind, n in s.execute(select(Image.source_kind, func.count()).group_by(Image.source_kind))
                }
            )
            origins = {
                str(origin): int(n)
                for origin, n in s.execute(
                    select(Image.split_origin, func.count())
                    .where(Image.split_origin.is_not(None))
                    .group_by(Image.split_origin)
                )
            }
            paths = list(s.scalars(select(Image.path).where(Image.readable.is_(True)).order_by(Image.id)))
            gone = missing_objects(p for p in paths if is_remote(p))  # objects: one listing per folder
            missing = [p for p in paths if (p in gone if is_remote(p) else not os.path.exists(p))]
            imports = [
                {
                    "id": r.id,
                    "source": r.source,
                    "kind": r.kind,
                    "started_at": r.started_at.isoformat(timespec="seconds"),
                    "counts": r.counts,
                }
                for r in s.scalars(select(ImportRecord).order_by(ImportRecord.id))
            ]
        active = catalog.exclusions()
        exclusions = Counter(e["reason"] or "(no reason given)" for e in active)
        by_action = Counter(int(e["action_id"]) for e in active if e["action_id"] is not None)
        return {
            "workspace": str(ws.root),
            **summary,
            "catalog": catalog.url,
            "missing": missing,
            "empty_classes": sorted(set(summary["classes"]) - catalog.labels_in_use()),
            "exclusions": dict(exclusions.most_common()),
            "exclusion_actions": {str(a): n for a, n in sorted(by_action.items())},
            "split_origins": origins,
            "sources": dict(sorted(sources.items())),
            "imports": imports,
        }
    finally:
        ws.close()
