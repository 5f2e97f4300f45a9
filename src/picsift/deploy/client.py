"""The Python SDK: `picsift.Client("http://host:8000", api_key=None).predict(path_or_bytes_or_PIL)`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from picsift.config import check_number
from picsift.errors import PicsiftError

ImageInput = Any  # str | Path | bytes | PIL.Image.Image


class ServerError(PicsiftError):
    """The server answered with an error (status, code and message from its JSON body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _to_bytes(image: ImageInput) -> tuple[str, bytes]:
    """(file name, bytes) for a path, raw bytes or a PIL image (sent as PNG, lossless)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "image", bytes(image)
    if isinstance(image, (str, Path)):
        p = Path(image)
        if not p.is_file():
            raise PicsiftError(f"no such image file: {p}")
        return p.name, p.read_bytes()
    if hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image
        buf = io.BytesIO()
        img = image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")
        img.save(buf, format="PNG")
        return "image.png", buf.getvalue()
    raise TypeError(f"predict takes a path, bytes or a PIL image, not {type(image).__name__}")


def _top_k_params(top_k: int | None) -> dict[str, int] | None:
    """The query parameters for `top_k` (None: none, the server's default). ConfigError for a value the server
    would refuse: anything but a whole number >= 1 (0 is refused, not dropped)."""
    if top_k is None:
        return None
    return {"top_k": check_number(top_k, "top_k", low=1, whole=True)}


class Client:
    """A small synchronous client for `picsift serve` (httpx, one keep-alive connection pool)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise PicsiftError(f"cannot reach the picsift server at {self.url}: {type(e).__name__}: {e}") from e
        if r.status_code >= 400:
            try:
                body = r.json()
                code, message = str(body.get("error", "error")), str(body.get("detail", r.text))
            except ValueError:
                code, message = "error", r.text[:500]
            raise ServerError(r.status_code, code, message)
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text

    def predict(self, image: ImageInput, top_k: int | None = None) -> dict[str, Any]:
        """One image -> {prediction_id, label, confidence, top_k: [{label, probability}], model_version}.

        top_k: how many classes (None: the server's default); ConfigError, before any request, when it is not a
        whole number >= 1."""
        params = _top_k_params(top_k)
        name, data = _to_bytes(image)
        return self._call("POST", "/v1/predict", files={"file": (name, data)}, params=params)

    def predict_batch(self, images: Sequence[ImageInput], top_k: int | None = None) -> list[dict[str, Any]]:
        """Several images in one request; each result has either a prediction or an `error`. top_k: as
        `predict`."""
        params = _top_k_params(top_k)
        files = [("files", _to_bytes(im)) for im in images]
        return list(self._call("POST", "/v1/predict/batch", files=files, params=params)["predictions"])

    def feedback(
        self, label: str, prediction_id: str | None = None, image: ImageInput | None = None, comment: str = ""
    ) -> dict[str, Any]:
        """The correct label for a prediction (by id) or for an image; returns {feedback_id, status, ...}."""
        if image is None:
            body = {"label": label, "prediction_id": prediction_id, "comment": comment}
            return self._call("POST", "/v1/feedback", json=body)
        data = {"label": label, "comment": comment} | ({"prediction_id": prediction_id} if prediction_id else {})
        return self._call("POST", "/v1/feedback", files={"file": _to_bytes(image)}, data=data)

    def model(self) -> dict[str, Any]:
        """GET /v1/model: the served model's description. ServerError for an error answer, PicsiftError when
        the server cannot be reached."""
        return self._call("GET", "/v1/model")

    def health(self) -> bool:
        """True when GET /healthz answers {"status": "ok"}; False on any error or no answer."""
        try:
            return bool(self._call("GET", "/healthz").get("status") == "ok")
        except PicsiftError:
            return False

    def reload(self, bundle: str | Path | None = None) -> dict[str, Any]:
        """POST /v1/admin/reload: hot-swap to `bundle` (default: re-read the current one); returns the old and
        new versions. ServerError for an error answer."""
        return self._call("POST", "/v1/admin/reload", json={"bundle": str(bundle)} if bundle else {})
