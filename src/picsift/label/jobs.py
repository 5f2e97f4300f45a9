"""Background jobs of the labelling app (training, auto-labelling), each in its own thread.

A job is polled by id; training progress is read from the run folder's history, which the
training loop appends to after every epoch, so the app needs no hook inside the training code.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.errors import PicsiftError
from picsift.runs import RunFolder

log = logging.getLogger("picsift.label")


@dataclass
class Job:
    """One background job of the app: its kind, parameters, status (running | done | failed), result or error."""

    id: int
    kind: str
    params: dict[str, Any]
    status: str = "running"  # running | done | failed
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    run_name: str | None = None  # training jobs: the run folder's name suffix
    runs_dir: Path | None = None
    total_epochs: int | None = None

    def progress(self) -> dict[str, Any]:
        """Epochs done / total and the latest metrics, read from the run folder (training jobs)."""
        out: dict[str, Any] = {"epochs_done": 0, "total_epochs": self.total_epochs, "last": None}
        if self.run_name is None or self.runs_dir is None or not self.runs_dir.exists():
            return out
        found = sorted(p for p in self.runs_dir.iterdir() if p.name.endswith(self.run_name))
        if not found:
            return out
        rows = RunFolder(found[-1]).read_history()
        out["epochs_done"] = len(rows)
        out["last"] = rows[-1] if rows else None
        out["run_dir"] = found[-1].name
        return out

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready data, with its duration in seconds and its progress."""
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "seconds": round((self.finished or time.time()) - self.started, 1),
            "result": self.result,
            "error": self.error,
            "progress": self.progress(),
        }


class Jobs:
    """The app's background jobs, by id; each runs in its own daemon thread."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, job: Job, work: Callable[[], dict[str, Any]]) -> Job:
        """Run `work` in a new thread as `job` (given the next id); ConfigError while a job of its kind is running."""
        with self._lock:
            if any(j.kind == job.kind and j.status == "running" for j in self._jobs.values()):
                from picsift.errors import ConfigError

                raise ConfigError(f"a {job.kind} job is already running; wait for it to finish")
            job.id = next(self._ids)
            self._jobs[job.id] = job

        def target() -> None:
            try:
                job.result = work()
                job.status = "done"
            except Exception as e:  # reported to the browser; the server keeps serving
                if isinstance(e, PicsiftError):  # a user's error (no trained run yet): its message says it all
                    log.warning("%s job %d failed: %s", job.kind, job.id, e)
                else:
                    log.exception("%s job %d failed", job.kind, job.id)
                job.error = f"{type(e).__name__}: {e}"
                job.status = "failed"
            finally:
                job.finished = time.time()

        threading.Thread(target=target, name=f"picsift-{job.kind}-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        """Every job, newest first."""
        return sorted(self._jobs.values(), key=lambda j: -j.id)
