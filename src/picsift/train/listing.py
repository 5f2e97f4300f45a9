"""What `picsift runs` shows: every run folder of a workspace with its model, date, accuracy and state."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from picsift.errors import RunError
from picsift.runs import RunFolder
from picsift.store import Workspace
from picsift.train.checkpoints import sidecar_path

FINISHED = "finished"
RESUMABLE = "failed, resumable"  # stopped before the end with a checkpoint: `train --resume RUN` continues it
DAMAGED = "failed, damaged checkpoint"  # stopped, and its checkpoint is empty or cut short
INCOMPLETE = "failed, no checkpoint"  # stopped before its first checkpoint (a kill): nothing to resume

_STAMP = re.compile(r"^(\d{8}-\d{6})")


@dataclass(frozen=True)
class RunSummary:
    """One run folder for `picsift runs`: its id, model, creation time, best validation accuracy, epochs, status."""

    run_id: str
    model: str | None
    created: str  # ISO 8601, UTC, from the run id's stamp (else the folder's time)
    val_acc: float | None  # the best validation accuracy recorded (run.json, else metrics.jsonl)
    epochs: int  # epochs recorded in metrics.jsonl
    status: str  # FINISHED | RESUMABLE | DAMAGED | INCOMPLETE

    def to_dict(self) -> dict[str, Any]:
        """Every field, as a dict."""
        return asdict(self)


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _optional(read: Any) -> dict[str, Any]:
    """A RunFolder reader's result, or {} for a file that is missing or unreadable (a run killed mid-write)."""
    try:
        doc = read()
    except RunError:  # RunNotFoundError (not there) or RunCorruptError (cut short)
        return {}
    return doc if isinstance(doc, dict) else {}


def checkpoint_state(run_dir: Path) -> str:
    """RESUMABLE, DAMAGED (empty, or a size no sidecar entry vouches for) or INCOMPLETE (none). A cheap check
    (no checksum); `train --resume` verifies the SHA-256 in full."""
    path = RunFolder(run_dir).checkpoint_path
    if not path.is_file():
        return INCOMPLETE
    size = path.stat().st_size
    if size == 0:
        return DAMAGED
    record = _json(sidecar_path(path))
    if record:
        previous = record.get("previous")
        sizes = {record.get("bytes")} | ({previous.get("bytes")} if isinstance(previous, dict) else set())
        if size not in sizes:
            return DAMAGED
    return RESUMABLE


def _saved_val_acc(meta: dict[str, Any]) -> float | None:
    """The saved model's validation accuracy from run.json: `val_acc`; for runs recorded before it, `best_val_acc`,
    except for a transfer run that kept its linear probe, whose `best_val_acc` was the best fine-tuned epoch's
    (thrown away): the probe's own accuracy then."""
    if meta.get("val_acc") is not None or "kept_epoch" in meta:
        return meta.get("val_acc")
    trainer = meta.get("trainer")
    if isinstance(trainer, dict) and trainer.get("kept") == "probe":
        probe = (trainer.get("phases") or {}).get("probe")
        if isinstance(probe, dict) and isinstance(probe.get("val_acc"), (int, float)):
            return float(probe["val_acc"])
    acc = meta.get("best_val_acc")
    return float(acc) if isinstance(acc, (int, float)) else None


def summarize_run(run_dir: Path) -> RunSummary:
    """One run folder's summary (a folder picsift did not write shows what it can: None for the unknown)."""
    run = RunFolder(run_dir)
    meta = _optional(run.read_record_if_any)
    config = _optional(run.read_config)
    try:
        rows = [r for r in run.read_history() if isinstance(r, dict)]
    except RunError:
        rows = []
    model = meta.get("model") or (config.get("train") or {}).get("model")
    accs = [r["val_acc"] for r in rows if isinstance(r.get("val_acc"), (int, float))]
    val_acc = _saved_val_acc(meta)
    if val_acc is None and not meta:  # a run still training (or stopped): the best epoch so far
        val_acc = max(accs) if accs else None
    m = _STAMP.match(run_dir.name)
    if m:
        created = datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    else:
        created = datetime.fromtimestamp(run_dir.stat().st_mtime, tz=timezone.utc)
    finished = run.has_artifact()
    return RunSummary(
        run_id=run_dir.name,
        model=model,
        created=created.isoformat(timespec="seconds"),
        val_acc=val_acc,
        epochs=len(rows),
        status=FINISHED if finished else checkpoint_state(run_dir),
    )


def list_all_runs(ws: Workspace) -> list[RunSummary]:
    """Every run folder under the workspace's runs/, finished or not, oldest first."""
    if not ws.runs_dir.is_dir():
        return []
    folders = sorted(p for p in ws.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [summarize_run(p) for p in folders]
