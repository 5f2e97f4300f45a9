"""Typed exceptions. The CLI maps each to one line and exit code 2; the server maps them to 4xx."""

from __future__ import annotations


class PicsiftError(Exception):
    """Base class of every error picsift raises on purpose, with an actionable message."""


class ConfigError(PicsiftError):
    """A setting or flag is invalid or a combination of settings makes no sense."""


class WorkspaceError(PicsiftError):
    """The workspace is missing, empty, or not usable for the requested operation."""


class NotFoundError(WorkspaceError):
    """A record asked for by id (an image, a feedback item) is not in the workspace's catalog."""


class ConflictError(PicsiftError):
    """A write lost to a concurrent change: the record changed since the caller read it."""


class DatasetError(PicsiftError):
    """Input data (a folder, manifest, archive, URL list) is malformed."""


class ImageDecodeError(PicsiftError):
    """An image could not be decoded; the message says why."""


class ModelNotFoundError(PicsiftError):
    """A model name is not in the registry."""


class WeightsNotAvailableError(PicsiftError):
    """Pretrained weights were asked for but cannot be loaded."""


class RunError(PicsiftError):
    """A run folder cannot be used: base of RunNotFoundError and RunCorruptError."""


class RunNotFoundError(RunError):
    """A run id or folder does not exist, or lacks a file the operation needs."""


class RunCorruptError(RunError):
    """A run folder's file exists but cannot be read: invalid JSON, a wrong shape, missing keys."""


class LabelError(ConfigError):
    """A label (class name) is not usable: not text, or empty once surrounding spaces are removed."""


class UnsafePathError(PicsiftError):
    """A path built from user-supplied text would lie outside the folder it was meant for."""


class CheckpointError(PicsiftError):
    """A training checkpoint cannot be resumed from: empty, cut short, or not the bytes that were written."""


class DistributedError(PicsiftError):
    """Training in several processes (torchrun) failed as a group: the processes could not form their group in
    time, or another process of the run failed or stopped answering."""
