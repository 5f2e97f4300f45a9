"""POST /v1/feedback: a correction, by prediction id (JSON) or with the image (multipart)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from picsift.deploy.server.deps import get_settings, get_state, require_api_key
from picsift.deploy.server.inputs import b64decode, check_image_bytes
from picsift.deploy.server.reading import content_kind, one_file, read_form, read_json, text_field
from picsift.deploy.server.schemas import FeedbackReceipt, documented
from picsift.deploy.server.settings import ServerSettings
from picsift.deploy.server.state import ServerState
from picsift.errors import ConfigError, ImageDecodeError
from picsift.web.errors import ApiError, error_responses
from picsift.web.responses import StrictJSONResponse

router = APIRouter(
    prefix="/v1",
    tags=["feedback"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(400, 401, 403, 404, 413, 415, 421, 422),
)

FEEDBACK_HINT = 'send application/json {"label": CLASS, "prediction_id": ID} or multipart fields label and file'
_FEEDBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["label"],
                    "properties": {
                        "prediction_id": {"type": "string"},
                        "label": {"type": "string"},
                        "comment": {"type": "string"},
                        "image": {"type": "string", "format": "byte"},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "label"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "label": {"type": "string"},
                        "comment": {"type": "string"},
                        "prediction_id": {"type": "string"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/feedback",
    summary="Send the correct label for an image",
    status_code=201,
    openapi_extra=_FEEDBACK_BODY,
    responses={201: documented(FeedbackReceipt, "The feedback was stored")},
)
async def feedback(
    request: Request, state: ServerState = Depends(get_state), settings: ServerSettings = Depends(get_settings)
) -> StrictJSONResponse:
    """Store the correct label for a prediction (by `prediction_id`) or for an uploaded image; 201 with the
    feedback id. 404 for an unknown prediction id sent without the image; 4xx for a missing label or bad image."""
    image: bytes | None = None
    if content_kind(request) == "multipart":
        fields = await read_form(request)
        label, comment = text_field(fields, "label"), text_field(fields, "comment") or ""
        prediction_id = text_field(fields, "prediction_id")
        if "file" in fields:
            image = one_file(fields)
    else:
        body = await read_json(request, hint=FEEDBACK_HINT)
        label, comment, prediction_id = body.get("label"), body.get("comment") or "", body.get("prediction_id")
        if body.get("image") is not None:
            image = b64decode(body["image"], "image")
        if not isinstance(comment, str) or (prediction_id is not None and not isinstance(prediction_id, str)):
            raise ApiError(422, "invalid_field", "'comment' and 'prediction_id' must be strings")
    if label is None:
        raise ApiError(422, "missing_field", "field 'label' (the correct class) is required")
    extra: dict[str, Any] = {}
    if prediction_id:
        held = state.held(prediction_id)
        if held is not None:
            extra = {"predicted_label": held.label, "confidence": held.confidence, "model_version": held.model_version}
            image = image if image is not None else held.image
        elif image is None:
            raise ApiError(
                404,
                "unknown_prediction",
                f"prediction {prediction_id!r} is not held by this server (it keeps the images of the last "
                f"{settings.feedback_cache} predictions); send the image with multipart feedback instead",
            )
    if image is None:
        raise ApiError(422, "missing_field", "send a 'prediction_id' from /v1/predict or the image ('file' field)")
    check_image_bytes(image, settings.max_pixels)
    store = state.feedback_store()
    try:
        item = await run_in_threadpool(
            store.add, label, image=image, prediction_id=prediction_id, comment=comment, **extra
        )
    except ImageDecodeError as e:
        raise ApiError(422, "undecodable_image", f"image cannot be decoded: {e}") from e
    except ConfigError as e:
        raise ApiError(422, "invalid_field", str(e)) from e
    state.metrics.feedback.inc()
    predictor = state.predictor
    known = predictor is not None and item.label in predictor.classes
    return StrictJSONResponse(
        {
            "feedback_id": item.id,
            "status": item.status,
            "label": item.label,
            "sha256": item.sha256,
            "prediction_id": item.prediction_id,
            "known_class": known,
        },
        status_code=201,
    )
