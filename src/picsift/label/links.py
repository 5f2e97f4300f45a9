"""Links into the labelling app, for reports and tools that name images: `label_app_link(12)`.

The app opens the image named in its URL's fragment, `#image=<id>` (or the query, `?image=<id>`), in its
single-image view; the fragment never reaches the server, so a link works with or without the access token
in the query (`http://host:8765/?token=T#image=12`). This module imports nothing heavy: reports may use it freely.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from picsift.errors import ConfigError

DEFAULT_APP_URL = "http://127.0.0.1:8765/"  # where `picsift label` serves by default


def app_url(url: str | None) -> str:
    """The labelling app's address for a report's links: `url` (`--label-url`, as `picsift label` printed it,
    e.g. "http://labels.lan:8766/?token=T"), or DEFAULT_APP_URL when None. ConfigError for anything but an
    http(s) URL with a host."""
    if url is None:
        return DEFAULT_APP_URL
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--label-url must be the labelling app's http(s) address as `picsift label` prints it "
            f"(e.g. {DEFAULT_APP_URL}); got {url!r}"
        )
    return url.strip()


def label_app_link(image_id: int, base_url: str = DEFAULT_APP_URL) -> str:
    """The URL that opens catalog image `image_id` in the labelling app served at `base_url`.

    base_url: the app's address as `picsift label` prints it (with `?token=...` when it has one); any
    fragment it carries is replaced. ValueError for an id that is not a positive integer.
    """
    if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id < 1:
        raise ValueError(f"an image id is a positive integer, got {image_id!r}")
    base = base_url.split("#", 1)[0]
    if "?" not in base and not base.endswith("/"):
        base += "/"
    return f"{base}#image={image_id}"
