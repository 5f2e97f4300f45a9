"""Request bodies -> image bytes -> model input, with limits and specific 4xx errors.

Order of checks: body size (middleware), form/JSON shape, content sniffing (Pillow identifies the
format from the bytes, not from the client's declared type, trying only the readable formats of
`picsift.data.formats`, the list every command reads), pixel count from the header (before
decoding), then a full decode, which catches truncated and corrupt files.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from picsift.config import check_number
from picsift.data.formats import PILLOW_FORMATS, describe, missing_decoder_for, signature_format
from picsift.data.images import bomb_pixels, load_rgb, resize_square
from picsift.errors import ConfigError, ImageDecodeError
from picsift.web.errors import ApiError


class BodyTooLarge(ApiError):
    """413 request_too_large: the request body exceeds the server's limit of `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "request_too_large", f"request body exceeds the server's limit of {limit} bytes")


def check_image_bytes(data: bytes, max_pixels: int) -> int:
    """Raise ApiError unless `data` is an image in a readable format within the pixel cap; returns its pixels.

    415 when no readable format recognises the bytes (with what to install when it is HEIC/AVIF and
    the decoder is missing), 422 when the header of a recognised format cannot be read, 413 above
    `max_pixels`. Only the header is parsed here.
    """
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as img:  # reads the header only
                w, h = img.size
    except Image.DecompressionBombError as e:  # Pillow refuses far beyond the server's cap before we can check it
        pixels = bomb_pixels(e)
        size = f"{pixels} pixels" if pixels is not None else "more pixels than Pillow opens"
        raise ApiError(413, "too_many_pixels", f"image is {size}; this server accepts at most {max_pixels}") from e
    except UnidentifiedImageError as e:
        claimed = signature_format(data)
        if claimed is not None:
            raise ApiError(
                422,
                "undecodable_image",
                f"the data starts like {claimed.label} but its header cannot be read (truncated or corrupt)",
            ) from e
        missing = missing_decoder_for(data)
        raise ApiError(
            415,
            "not_an_image",
            missing
            or f"the uploaded data is not an image in a supported format ({describe()}); it starts with {data[:8]!r}",
        ) from e
    except Exception as e:
        raise ApiError(
            422,
            "undecodable_image",
            f"the data looks like an image but its header cannot be read (truncated or corrupt: {type(e).__name__})",
        ) from e
    if w * h > max_pixels:
        raise ApiError(
            413, "too_many_pixels", f"image is {w}x{h} = {w * h} pixels; this server accepts at most {max_pixels}"
        )
    return w * h


def decode_checked(predictor: Any, data: bytes) -> np.ndarray:
    """Image bytes -> uint8 (S, S, 3) RGB array at the predictor's storage size. ApiError 422 when the bytes
    cannot be decoded."""
    try:
        return resize_square(load_rgb(data), predictor.data_config.storage_size)
    except ImageDecodeError as e:
        raise ApiError(422, "undecodable_image", f"image cannot be decoded: {e}") from e


def b64decode(value: Any, field: str) -> bytes:
    """The bytes of a base64 string (a data: URL prefix is dropped). ApiError 422 when not a non-empty string,
    400 when not valid base64."""
    if not isinstance(value, str) or not value:
        raise ApiError(422, "missing_field", f"JSON field {field!r} must be a non-empty base64 string")
    if value.startswith("data:") and "," in value:  # data URLs: data:image/png;base64,....
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, "invalid_base64", f"JSON field {field!r} is not valid base64: {e}") from e


def parse_top_k(value: Any, default: int, num_classes: int) -> int:
    """top_k as an int capped at `num_classes` (`default` when absent). ApiError 422 invalid_top_k when not a whole
    number >= 1 (true, 2.5, NaN, Infinity, "abc", 0 and -1e308 are not); the message says what was expected and
    never repeats a huge value digit by digit (`picsift.config.check_number`, as the CLI and the API check it)."""
    if value is None or value == "":
        return min(default, num_classes)
    k = value
    if isinstance(value, str):  # a form's or query's "3"
        try:
            k = int(value.strip())
        except ValueError:  # not a whole number, or one of over 4300 digits
            k = value
    elif isinstance(value, float) and value.is_integer() and abs(value) < 2**63:  # a JSON 3.0
        k = int(value)
    try:
        check_number(k, "top_k", low=1, whole=True)
    except ConfigError as e:
        raise ApiError(422, "invalid_top_k", str(e)) from None
    return min(k, num_classes)
