"""The library logs through `logging`; only the CLI writes to the terminal."""

from __future__ import annotations

import logging

logger = logging.getLogger("picsift")
