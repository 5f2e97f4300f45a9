"""Server settings: one frozen dataclass, injected into every route with `Depends(get_settings)`."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picsift.config import check_number, check_optional
from picsift.errors import ConfigError
from picsift.jsonio import dumps
from picsift.web.hosts import allowed_host_names

API_KEY_ENV = "PICSIFT_API_KEY"
SETTINGS_ENV = "PICSIFT_SERVE_SETTINGS"  # JSON settings handed to each worker process


@dataclass(frozen=True)
class ServerSettings:
    """Everything `picsift serve` is configured with: bundle, workspace, runtime, API key, batching, request
    limits, feedback cache, prediction log and host names."""

    bundle: Path
    workspace: Path | None = None  # feedback + prediction log; default: the bundle's source workspace
    runtime: str = "auto"  # auto | onnx | torch
    device: str = "cpu"  # torch runtime only
    threads: int | None = None  # inference threads (ONNX Runtime intra-op / torch)
    api_key: str | None = None
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_request_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_batch_images: int = 64
    default_top_k: int = 3
    feedback_cache: int = 1024  # recent predictions whose images are held for feedback by id
    feedback_cache_bytes: int = 256 * 1024 * 1024  # ... and at most this many bytes of them
    log_predictions: bool = True
    prediction_log_max_bytes: int = 16 * 1024 * 1024  # a prediction log file is rotated beyond this size
    prediction_log_files: int = 10  # ... and only this many files are kept (the log stays under ~160 MB)
    host: str = "127.0.0.1"  # the interface the server listens on
    # Host names answered besides the loopback ones ("*": any). Without an API key only these (and, bound beyond
    # loopback, the machine's own names) are answered, against DNS rebinding; with a key, any unless set.
    allowed_hosts: tuple[str, ...] = ()
    workers: int = 1  # uvicorn worker processes, each with its own model (set by `serve`)

    def validate(self) -> ServerSettings:
        """Self, after checking the limits (`check_number`: NaN and infinities refused too) and the runtime name.
        ConfigError naming the flag and the valid range."""
        whole = {"whole": True}
        check_number(self.max_batch_size, "--max-batch-size", low=1, high=65536, **whole)
        check_number(self.max_wait_ms, "--max-wait-ms", low=0, high=60_000)
        check_number(self.max_request_bytes, "--max-request-bytes", low=1024, **whole)
        check_number(self.max_pixels, "--max-pixels", low=1, **whole)
        check_number(self.max_batch_images, "max_batch_images", low=1, high=65536, **whole)
        check_number(self.default_top_k, "default_top_k", low=1, **whole)
        check_number(self.feedback_cache, "feedback_cache", low=0, **whole)
        check_number(self.feedback_cache_bytes, "feedback_cache_bytes", low=0, **whole)
        check_number(self.prediction_log_max_bytes, "--prediction-log-max-bytes", low=1024, **whole)
        check_number(self.prediction_log_files, "--prediction-log-files", low=1, high=10_000, **whole)
        check_optional(self.threads, "--threads", low=1, high=1024, **whole)
        check_number(self.workers, "--workers", low=1, high=1024, **whole)
        if self.runtime not in ("auto", "onnx", "torch"):
            raise ConfigError(f"--runtime must be auto, onnx or torch; got {self.runtime!r}")
        return self

    def with_env_key(self) -> ServerSettings:
        """The API key from $PICSIFT_API_KEY when none was given explicitly."""
        if self.api_key is None and os.environ.get(API_KEY_ENV):
            return dataclasses.replace(self, api_key=os.environ[API_KEY_ENV])
        return self

    def to_json(self) -> str:
        """The settings as JSON (paths as strings), to hand to worker processes."""
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dumps(d)  # paths as strings

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        """Settings from `to_json`'s text."""
        d = json.loads(text)
        d["bundle"] = Path(d["bundle"])
        if d.get("workspace"):
            d["workspace"] = Path(d["workspace"])
        if "allowed_hosts" in d:
            d["allowed_hosts"] = tuple(d["allowed_hosts"])
        return cls(**d)

    def answered_hosts(self) -> frozenset[str] | None:
        """The Host names the server answers (None: any); see `allowed_hosts`."""
        if self.api_key is not None and not self.allowed_hosts:
            return None  # every route but /healthz needs the key: a rebound page cannot present it
        return allowed_host_names(self.host, self.allowed_hosts)

    def public(self) -> dict[str, Any]:
        """What GET /v1/model may show (never the key)."""
        keep = ("runtime", "max_batch_size", "max_wait_ms", "max_request_bytes", "max_pixels", "max_batch_images")
        return {k: getattr(self, k) for k in keep} | {"api_key_required": self.api_key is not None}
