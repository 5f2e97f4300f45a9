"""Reading the request body: multipart uploads or JSON with base64, with specific errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from picsift.deploy.server.inputs import BodyTooLarge, b64decode
from picsift.web.errors import ApiError

BATCH_HINT = (
    "send multipart/form-data with one field 'files' per image, or application/json {\"images\": [BASE64, ...]}"
)
SINGLE_HINT = "send multipart/form-data with the image in field 'file', or application/json {\"image\": BASE64}"


def content_kind(request: Request) -> str:
    """ "multipart" or "json" from the Content-Type header. ApiError 415 for any other type."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return "multipart"
    if ctype == "application/json":
        return "json"
    raise ApiError(
        415, "unsupported_content_type", f"content type {ctype or '(none)'!r} is not accepted: {SINGLE_HINT}"
    )


async def read_form(request: Request) -> dict[str, list[Any]]:
    """The multipart fields, files read into bytes: {name: [bytes | str, ...]}."""
    try:
        form = await request.form(max_files=256, max_fields=64)
    except BodyTooLarge:
        raise
    except Exception as e:  # malformed multipart bodies are the client's error
        raise ApiError(400, "invalid_multipart", f"the multipart body cannot be parsed: {e}") from e
    try:
        out: dict[str, list[Any]] = {}
        for key, value in form.multi_items():
            out.setdefault(key, []).append(await value.read() if isinstance(value, UploadFile) else value)
        return out
    finally:
        await form.close()


async def read_json(request: Request, *, hint: str = SINGLE_HINT) -> dict[str, Any]:
    """The JSON body as a dict. ApiError 400 when not valid JSON (or nested too deeply for the parser), 422 when
    not an object; `hint` says what to send."""
    body = await request.body()
    try:
        data = json.loads(body)
    except ValueError as e:  # UnicodeDecodeError too: the body is not UTF-8
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}; {hint}") from e
    except RecursionError as e:
        raise ApiError(400, "invalid_json", f"the body is JSON nested too deeply to read; {hint}") from e
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_json", f"the JSON body must be an object, got {type(data).__name__}; {hint}")
    return data


def one_file(fields: dict[str, list[Any]], name: str = "file") -> bytes:
    """The bytes of the first upload in multipart field `name`. ApiError 422 when missing or a text value."""
    values = fields.get(name)
    if not values:
        raise ApiError(
            422, "missing_field", f"multipart field {name!r} (the image file) is required; got fields {sorted(fields)}"
        )
    value = values[0]
    if isinstance(value, str):
        raise ApiError(422, "invalid_field", f"multipart field {name!r} must be a file upload, not a text value")
    return bytes(value)


def text_field(fields: dict[str, list[Any]], name: str) -> str | None:
    """The first value of multipart field `name` as text (bytes decoded as UTF-8), or None when absent."""
    values = fields.get(name)
    if not values:
        return None
    value = values[0]
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


async def read_single(request: Request) -> tuple[bytes, Any]:
    """(image bytes, top_k or None) from either body kind."""
    if content_kind(request) == "multipart":
        fields = await read_form(request)
        return one_file(fields), text_field(fields, "top_k")
    body = await read_json(request)
    if "image" not in body:
        raise ApiError(422, "missing_field", f"JSON field 'image' (base64) is required; got keys {sorted(body)}")
    return b64decode(body["image"], "image"), body.get("top_k")


async def read_many(request: Request, limit: int) -> tuple[list[bytes | ApiError], Any]:
    """Images of a batch request: multipart fields 'files' (or 'file'), or JSON {"images": [BASE64, ...]}."""
    items: list[bytes | ApiError] = []
    if content_kind(request) == "multipart":
        fields = await read_form(request)
        values = fields.get("files", []) + fields.get("file", [])
        if not values:
            raise ApiError(
                422,
                "missing_field",
                f"multipart fields 'files' (one per image) are required; got fields {sorted(fields)}",
            )
        for v in values:
            items.append(
                ApiError(422, "invalid_field", "a 'files' value is text, not a file upload")
                if isinstance(v, str)
                else bytes(v)
            )
        top_k = text_field(fields, "top_k")
    else:
        body = await read_json(request, hint=BATCH_HINT)
        images = body.get("images")
        if not isinstance(images, list) or not images:
            raise ApiError(422, "missing_field", "JSON field 'images' must be a non-empty list of base64 strings")
        for i, v in enumerate(images):
            try:
                items.append(b64decode(v, f"images[{i}]"))
            except ApiError as e:
                items.append(e)
        top_k = body.get("top_k")
    if len(items) > limit:
        raise ApiError(413, "too_many_images", f"{len(items)} images in one request; at most {limit} allowed")
    return items, top_k
