"""The JSON response of picsift's web apps (labelling app, model server): strict JSON via picsift.jsonio.

Starlette's own JSONResponse refuses NaN with a server error (500); this one writes a value that was not
measured (NaN, infinity) as null, like every JSON file picsift writes, and numpy values as plain numbers.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from picsift.jsonio import dumps

__all__ = ["StrictJSONResponse"]


class StrictJSONResponse(JSONResponse):
    """A JSONResponse whose body is strict JSON (NaN/Infinity -> null); use as FastAPI's default_response_class."""

    def render(self, content: Any) -> bytes:
        """`content` as compact UTF-8 JSON; NaN and infinities become null."""
        return dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
