"""POST /v1/predict and POST /v1/predict/batch."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from picsift.deploy.server.deps import get_settings, get_state, require_api_key
from picsift.deploy.server.inputs import check_image_bytes, decode_checked, parse_top_k
from picsift.deploy.server.reading import read_many, read_single
from picsift.deploy.server.schemas import BatchPredictions, Prediction, documented
from picsift.deploy.server.settings import ServerSettings
from picsift.deploy.server.state import HeldPrediction, ServerState, now_ms
from picsift.inference import top_classes
from picsift.web.errors import ApiError, error_responses

router = APIRouter(
    prefix="/v1",
    tags=["predict"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(400, 401, 403, 413, 415, 421, 422, 503),
)

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, "top_k": {"type": "integer"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "byte"}, "top_k": {"type": "integer"}},
                }
            },
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "top_k": {"type": "integer"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "format": "byte"}},
                        "top_k": {"type": "integer"},
                    },
                }
            },
        },
    }
}


# Images up to this many pixels decode on the event loop (well under a millisecond): a thread hop
# costs more than that on a busy machine. Larger ones decode in the thread pool.
INLINE_DECODE_PIXELS = 256 * 256


def _decode_checked(predictor: Any, data: bytes) -> tuple[np.ndarray, str]:
    return decode_checked(predictor, data), hashlib.sha256(data).hexdigest()


async def _decode(predictor: Any, data: bytes, max_pixels: int) -> tuple[np.ndarray, str]:
    if check_image_bytes(data, max_pixels) <= INLINE_DECODE_PIXELS:
        return _decode_checked(predictor, data)
    return await run_in_threadpool(_decode_checked, predictor, data)


def _result(
    state: ServerState, predictor: Any, probs: np.ndarray, data: bytes, sha: str, k: int, t0: float, client: str | None
) -> dict[str, Any]:
    top = top_classes(probs, predictor.classes, k)
    pid = state.new_prediction_id()
    out = {
        "prediction_id": pid,
        "label": top[0][0],
        "confidence": top[0][1],
        "top_k": [{"label": c, "probability": p} for c, p in top],
        "model_version": predictor.version,
        "latency_ms": now_ms(t0),
    }
    state.hold(pid, HeldPrediction(data, sha, top[0][0], top[0][1], predictor.version))
    state.log_predictions(
        [
            {
                **out,
                "sha256": sha,
                "client": client,
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            }
        ]
    )
    return out


def ready_predictor(state: ServerState) -> Any:
    """The loaded predictor, or a 503 while none is loaded yet."""
    if state.predictor is None:
        raise ApiError(503, "not_ready", "no model loaded yet")
    return state.predictor


@router.post(
    "/predict",
    summary="Classify one image",
    openapi_extra=_IMAGE_BODY,
    responses={200: documented(Prediction, "The prediction")},
)
async def predict(
    request: Request,
    top_k: int | None = Query(None, description="How many classes to return (default 3)."),
    state: ServerState = Depends(get_state),
    settings: ServerSettings = Depends(get_settings),
) -> dict[str, Any]:
    """Classify one image (multipart 'file' or JSON base64 'image'): label, confidence, top-k classes and a
    prediction id for feedback. 4xx for a bad body or image, 503 while no model is loaded."""
    t0 = time.perf_counter()
    predictor = ready_predictor(state)
    with state.batcher.arriving():
        data, body_k = await read_single(request)
        k = parse_top_k(top_k if top_k is not None else body_k, settings.default_top_k, len(predictor.classes))
        array, sha = await _decode(predictor, data, settings.max_pixels)
    probs = await state.batcher.submit(predictor, array)
    return _result(state, predictor, probs, data, sha, k, t0, request.client.host if request.client else None)


@router.post(
    "/predict/batch",
    summary="Classify several images in one request",
    openapi_extra=_BATCH_BODY,
    responses={200: documented(BatchPredictions, "One entry per image: a prediction or an error")},
)
async def predict_batch(
    request: Request,
    top_k: int | None = Query(None, description="How many classes to return per image (default 3)."),
    state: ServerState = Depends(get_state),
    settings: ServerSettings = Depends(get_settings),
) -> dict[str, Any]:
    """Classify up to max_batch_images images in one request; a bad image gets an error entry at its index
    instead of failing the request. 503 while no model is loaded."""
    t0 = time.perf_counter()
    predictor = ready_predictor(state)
    client = request.client.host if request.client else None
    with state.batcher.arriving():
        items, body_k = await read_many(request, settings.max_batch_images)
        k = parse_top_k(top_k if top_k is not None else body_k, settings.default_top_k, len(predictor.classes))

        async def one(item: bytes | ApiError) -> dict[str, Any]:
            try:
                if isinstance(item, ApiError):
                    raise item
                array, sha = await _decode(predictor, item, settings.max_pixels)
            except ApiError as e:
                state.metrics.input_errors.labels(code=e.code).inc()
                return {"error": e.code, "detail": e.message, "status": e.status}
            probs = await state.batcher.submit(predictor, array)
            return _result(state, predictor, probs, item, sha, k, t0, client)

        results = await asyncio.gather(*(one(it) for it in items))
    for i, r in enumerate(results):
        r["index"] = i
    return {"predictions": results, "model_version": predictor.version, "latency_ms": now_ms(t0)}
