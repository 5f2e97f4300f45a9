"""Prometheus metrics, in a registry owned by one app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's Prometheus metrics (requests, latency, batch sizes, inference time, predictions, errors,
    feedback, reloads, model info) in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("picsift_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "picsift_request_latency_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "picsift_batch_size", "Images per model call (micro-batching)", buckets=BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "picsift_inference_seconds", "Model call time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.predictions = Counter("picsift_predictions", "Images predicted", registry=r)
        self.input_errors = Counter("picsift_input_errors", "Rejected inputs", ["code"], registry=r)
        self.feedback = Counter("picsift_feedback", "Feedback items stored", registry=r)
        self.reloads = Counter("picsift_reloads", "Model hot-swaps", ["result"], registry=r)
        self.model_info = Gauge("picsift_model_info", "The model being served", ["version", "runtime"], registry=r)

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one model call: `size` images in `seconds`."""
        self.batch_size.observe(size)
        self.inference.observe(seconds)
        self.predictions.inc(size)

    def set_model(self, version: str, runtime: str) -> None:
        """Make (version, runtime) the one model the info gauge reports."""
        self.model_info.clear()
        self.model_info.labels(version=version, runtime=runtime).set(1)

    def render(self) -> bytes:
        """The metrics in Prometheus text exposition format."""
        return generate_latest(self.registry)
