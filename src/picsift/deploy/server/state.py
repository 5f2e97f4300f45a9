"""Everything one running server holds: the model, the batcher, metrics, the prediction log, feedback."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from picsift.deploy.bundle import BundlePredictor, read_bundle_meta
from picsift.deploy.server.batching import MicroBatcher
from picsift.deploy.server.metrics import Metrics
from picsift.deploy.server.prediction_log import PredictionLog
from picsift.deploy.server.settings import ServerSettings
from picsift.store import Workspace, is_workspace

log = logging.getLogger("picsift.serve")


@dataclass
class HeldPrediction:
    """What feedback by prediction id needs: the image bytes and what the model said."""

    image: bytes
    sha256: str
    label: str
    confidence: float
    model_version: str


def default_workspace(bundle: Path) -> Path:
    """The bundle's source workspace if it is on this machine, else a workspace beside the bundle."""
    try:
        ws = read_bundle_meta(bundle).get("workspace")
    except Exception:
        ws = None
    if ws and is_workspace(ws):
        return Path(ws)
    return bundle.resolve().parent / "picsift-workspace"


class ServerState:
    """Everything one running server holds: settings, predictor, micro-batcher, metrics, prediction log,
    held images for feedback by id, and the feedback store."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.batcher = MicroBatcher(settings.max_batch_size, settings.max_wait_ms, self.metrics.observe_batch)
        self.predictor: BundlePredictor | None = None
        self.loaded_at: str | None = None
        self.history: list[dict[str, Any]] = []
        self.workspace_root = settings.workspace or default_workspace(settings.bundle)
        self._ws: Workspace | None = None
        self._feedback: Any = None
        self._held: collections.OrderedDict[str, HeldPrediction] = collections.OrderedDict()
        self._held_bytes = 0
        self._reload_lock = asyncio.Lock()
        self.prediction_log: PredictionLog | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the bundle (in a thread), open the prediction log if enabled (and possible), and start the batcher."""
        predictor = await asyncio.to_thread(self._load, self.settings.bundle)
        self._install(predictor)
        if self.settings.log_predictions:
            try:
                self.prediction_log = PredictionLog(
                    self.workspace_root / "predictions",
                    max_bytes=self.settings.prediction_log_max_bytes,
                    keep_files=self.settings.prediction_log_files,
                )
            except OSError as e:  # a full or read-only disk must not stop the server: it predicts, unlogged
                log.warning("cannot open the prediction log (predictions are not logged): %s", e)
        self.batcher.start()

    async def stop(self) -> None:
        """Stop the batcher (failing queued requests) and close the feedback workspace if opened."""
        await self.batcher.stop()
        if self._ws is not None:
            self._ws.close()

    @property
    def ready(self) -> bool:
        """True once a model is loaded and the batcher runs."""
        return self.predictor is not None and self.batcher.running

    def _load(self, bundle: Path) -> BundlePredictor:
        s = self.settings
        return BundlePredictor.load(bundle, runtime=s.runtime, threads=s.threads, device=s.device)

    def _install(self, predictor: BundlePredictor) -> None:
        self.predictor = predictor
        self.loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.history.append({"version": predictor.version, "bundle": str(predictor.path), "loaded_at": self.loaded_at})
        self.metrics.set_model(predictor.version, predictor.runtime.name)
        log.info("serving model %s from %s (%s)", predictor.version, predictor.path, predictor.runtime.name)

    async def reload(self, bundle: Path | None = None) -> dict[str, Any]:
        """Load a bundle (default: the current one's folder, re-read) and swap it in between batches."""
        async with self._reload_lock:
            old = self.predictor
            target = Path(bundle) if bundle is not None else (old.path if old else self.settings.bundle)
            try:
                new = await asyncio.to_thread(self._load, target)
            except Exception:
                self.metrics.reloads.labels(result="failed").inc()
                raise
            self._install(new)  # requests already decoded for `old` still finish on it
            self.metrics.reloads.labels(result="ok").inc()
            return {
                "previous_version": old.version if old else None,
                "version": new.version,
                "bundle": str(new.path),
                "loaded_at": self.loaded_at,
            }

    # ---- predictions --------------------------------------------------------------------------
    def new_prediction_id(self) -> str:
        """A fresh prediction id: 32 hex characters (uuid4)."""
        return uuid.uuid4().hex

    def hold(self, prediction_id: str, held: HeldPrediction) -> None:
        """Keep the image of a recent prediction for feedback by id (bounded in count and bytes)."""
        limit_n, limit_bytes = self.settings.feedback_cache, self.settings.feedback_cache_bytes
        if limit_n <= 0 or len(held.image) > limit_bytes:
            return
        self._held[prediction_id] = held
        self._held_bytes += len(held.image)
        while len(self._held) > limit_n or self._held_bytes > limit_bytes:
            _, old = self._held.popitem(last=False)
            self._held_bytes -= len(old.image)

    def held(self, prediction_id: str) -> HeldPrediction | None:
        """The held image and prediction for `prediction_id`, or None when unknown or evicted."""
        return self._held.get(prediction_id)

    def log_predictions(self, records: list[dict[str, Any]]) -> None:
        """Log each prediction record and append them to the prediction log; a write error is logged, not raised."""
        for r in records:
            log.info("prediction %s %s %.4f", r["prediction_id"], r.get("label"), r.get("confidence") or 0.0)
        if self.prediction_log is not None:
            try:
                self.prediction_log.write(records)
            except OSError as e:  # a full disk must not fail predictions
                log.warning("cannot write the prediction log: %s", e)

    # ---- feedback -----------------------------------------------------------------------------
    def feedback_store(self) -> Any:
        """The FeedbackStore of the server's workspace, opened (created if needed) on first use."""
        if self._feedback is None:
            from picsift.store.feedback_store import FeedbackStore

            self._ws = Workspace.open(self.workspace_root, create=True)
            self._feedback = FeedbackStore(self._ws)
        return self._feedback


def now_ms(t0: float) -> float:
    """Milliseconds since `t0` (a time.perf_counter() value), rounded to 3 decimals."""
    return round((time.perf_counter() - t0) * 1000.0, 3)
