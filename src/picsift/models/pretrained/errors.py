"""Typed errors of the pretrained-weights provider (both are WeightsNotAvailableError, so the CLI maps them)."""

from __future__ import annotations

from picsift.errors import WeightsNotAvailableError


class WeightsMismatchError(WeightsNotAvailableError):
    """A weights file does not fit the architecture: tensors left unmapped, missing, or of another shape."""


class WeightsIntegrityError(WeightsNotAvailableError):
    """A weights file's SHA-256 differs from the expected one (corrupt download or a different release)."""
