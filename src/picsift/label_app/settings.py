"""The labelling app's settings, and when it needs an access token."""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass
from pathlib import Path

from picsift.web.hosts import is_loopback


@dataclass(frozen=True)
class LabelSettings:
    """How the labelling app serves a workspace: its path, access token, annotator name, thumbnail size, hosts."""

    workspace: Path
    token: str | None = None  # required on every request when set
    annotator: str = ""  # default name recorded with label changes (the browser may send its own)
    thumb_size: int = 160  # px, longest side of grid thumbnails
    train_model: str = "fastcnn"  # model trained by the app's Train button
    host: str = "127.0.0.1"  # the interface the app is bound to: beyond loopback, a token is required
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides the loopback ones ("*": any)

    @property
    def default_annotator(self) -> str:
        """The name recorded with label changes: the configured one, else the login name, else "picsift"."""
        if self.annotator:
            return self.annotator
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "picsift"


def needs_token(host: str) -> bool:
    """Serving beyond the loopback interface needs an access token."""
    return not is_loopback(host)


def new_token() -> str:
    """A fresh random URL-safe access token (18 random bytes, 24 characters)."""
    return secrets.token_urlsafe(18)
