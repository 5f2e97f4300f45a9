"""The model server's answers as OpenAPI declares them (the routes build plain dicts; these only document them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    """GET /healthz: the process answers."""

    status: str


class Readiness(BaseModel):
    """GET /readyz: "ready" with the model's version, or (503) "loading"."""

    status: str
    version: str | None = None


class TopClass(BaseModel):
    """One of the top-k classes of a prediction, with its probability (0..1)."""

    label: str
    probability: float


class Prediction(BaseModel):
    """The answer of POST /v1/predict: the best class, its confidence (0..1), the top-k classes, the id to send
    feedback for, the model's version and the server's time for the request in milliseconds."""

    prediction_id: str
    label: str
    confidence: float
    top_k: list[TopClass]
    model_version: str
    latency_ms: float


class BatchPrediction(Prediction):
    """A prediction of POST /v1/predict/batch, at `index` in the request's images."""

    index: int


class BatchItemError(BaseModel):
    """An image of a batch that could not be classified: its index, the status it would have had alone, an
    error code and a message."""

    index: int
    status: int
    error: str
    detail: str


class BatchPredictions(BaseModel):
    """The answer of POST /v1/predict/batch: one entry per image, in the request's order."""

    predictions: list[BatchPrediction | BatchItemError]
    model_version: str
    latency_ms: float


class FeedbackReceipt(BaseModel):
    """The answer of POST /v1/feedback (201): the stored feedback's id and status, the label as stored, the
    image's SHA-256, the prediction it corrects and whether the label is one of the model's classes."""

    feedback_id: int
    status: str
    label: str
    sha256: str
    prediction_id: str | None
    known_class: bool


class Reloaded(BaseModel):
    """The answer of POST /v1/admin/reload: the versions before and after and the bundle now served."""

    previous_version: str | None
    version: str
    bundle: str
    loaded_at: str


class ModelInfo(BaseModel):
    """The answer of GET /v1/model: the bundle's description (version, classes, data config, ...), its metrics,
    when it was loaded, the load history and the server's limits."""

    model_config = ConfigDict(extra="allow")

    version: str
    classes: list[str]
    metrics: dict[str, Any]
    loaded_at: str | None
    history: list[dict[str, Any]]
    server: dict[str, Any]


def documented(model: type[BaseModel], description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry: `model` as the body, with a description."""
    return {"model": model, "description": description}
