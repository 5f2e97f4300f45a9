"""`picsift import`, `picsift status` (placeholder until the ingest stage lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
