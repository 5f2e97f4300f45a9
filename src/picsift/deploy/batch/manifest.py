"""The output folder's manifest: what a batch prediction was asked to do and which shards it has written.

manifest.json (written atomically after each shard, so it never names a shard that is not complete):

    format        1
    about         where the model came from (its path), for people; never compared
    settings      model (source, runtime, fingerprint), top_k, tta, reject_unknown, format, shard_size
    inputs        sources, files_from, count, sha256 (of every input path in order), shards (how many)
    shards        [{index, file, rows, errors, first, last, inputs_sha256, sha256}]: shard `index` covers
                  inputs [index * shard_size, (index + 1) * shard_size) of the input order; `inputs_sha256`
                  hashes their paths, `sha256` the shard file's bytes
    complete      True once every shard is written

A re-run of the same command reads it, skips the shards it lists (whose file is there with the same bytes) and
writes the rest; other settings or other inputs are refused (ConfigError) unless the caller overwrites.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.atomic import atomic_path
from picsift.errors import ConfigError
from picsift.jsonio import dumps

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
SHARD_PREFIX = "part-"


def shard_file(index: int, fmt: str) -> str:
    """The file name of shard `index`: part-00000.csv, part-00001.parquet, ..."""
    return f"{SHARD_PREFIX}{index:05d}.{fmt}"


def path_digest(paths: Iterable[str]) -> str:
    """sha256 (hex) of paths in order (each UTF-8, NUL-terminated)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_digest(files: Iterable[Path], root: Path) -> str:
    """sha256 (hex) of files' names (relative to `root`) and bytes, in sorted order: a model's fingerprint."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0" + file_digest(f).encode())
    return h.hexdigest()


@dataclass
class Manifest:
    """The manifest's content (see the module notes); `shards` keyed by shard index."""

    settings: dict[str, Any]
    inputs: dict[str, Any]
    shards: dict[int, dict[str, Any]] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)  # for people (where the model came from); never compared

    @property
    def complete(self) -> bool:
        """Every shard the inputs make is written."""
        return len(self.shards) == int(self.inputs["shards"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (shards in index order)."""
        return {
            "format": MANIFEST_FORMAT,
            "about": self.about,
            "settings": self.settings,
            "inputs": self.inputs,
            "shards": [self.shards[i] for i in sorted(self.shards)],
            "complete": self.complete,
        }

    def write(self, folder: Path) -> None:
        """Write manifest.json into `folder` atomically and durably (flushed to disk before it replaces the old
        one, so it never names a shard the disk does not hold); a killed writer's temporary file is removed."""
        with atomic_path(folder / MANIFEST_FILE) as tmp:
            tmp.write_text(dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of an output folder, or None when it has none. ConfigError when it cannot be read."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {MANIFEST_FORMAT}")
        shards = {int(s["index"]): dict(s) for s in doc["shards"]}
        return Manifest(dict(doc["settings"]), dict(doc["inputs"]), shards, dict(doc.get("about") or {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(
            f"{path} cannot be read ({e}): the folder is not a picsift prediction output; "
            "choose another --out, or --overwrite to start it again"
        ) from e


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} was {a!r}, now {b!r}")
    return out


def check_resumable(old: Manifest, settings: dict[str, Any], inputs: dict[str, Any], out: Path) -> None:
    """ConfigError unless `old` was written by the same settings over the same inputs (count and digest)."""
    said = _differences(old.settings, settings)
    if said:
        raise ConfigError(
            f"{out} holds predictions made with other settings ({'; '.join(said)}): "
            "use another --out, or --overwrite to replace them"
        )
    if (old.inputs.get("count"), old.inputs.get("sha256")) != (inputs["count"], inputs["sha256"]):
        raise ConfigError(
            f"{out} holds predictions of other inputs ({old.inputs.get('count')} paths then, {inputs['count']} now, "
            "or the same number in another order or with other names): "
            "use another --out, or --overwrite to replace them"
        )
