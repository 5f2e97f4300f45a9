"""Strict JSON for every file and output picsift writes: no NaN or Infinity, which most JSON parsers reject.

Python's `json` writes float("nan") as the bare word NaN by default; picsift instead writes `null` for a value
that was not measured (e.g. validation accuracy with no validation images). Everything goes through
`to_jsonable`, then `json.dumps(..., allow_nan=False)`, so a non-finite number that slipped past the conversion
raises instead of producing an invalid file. Files are written atomically (a temporary file in the same folder,
then `os.replace`), so a failed command never leaves a half-written or corrupt JSON file behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["append_json_line", "dumps", "to_jsonable", "write_json"]

Default = Callable[[Any], Any]


def to_jsonable(obj: Any, default: Default | None = None) -> Any:
    """`obj` as plain JSON types: non-finite floats (Python or numpy) become None, numpy/torch scalars and arrays
    become Python numbers and (nested) lists, tuples become lists, dataclasses become dicts, paths become strings.

    default: called on any other object (e.g. `str`); its result is converted in turn.
    Raises TypeError for an object of another type when no default is given.
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, Mapping):
        return {_key(k, default): to_jsonable(v, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, default) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name), default) for f in dataclasses.fields(obj)}
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays (np.bool_ too), torch tensors
        return to_jsonable(obj.tolist(), default)
    if default is not None:
        return to_jsonable(default(obj), None)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _key(key: Any, default: Default | None) -> str | int | float | bool | None:
    """A dict key json accepts (it writes non-string keys as their JSON text)."""
    if isinstance(key, str):
        return key
    value = to_jsonable(key, default)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def dumps(obj: Any, *, default: Default | None = None, **kw: Any) -> str:
    """Strict `json.dumps`: `obj` through `to_jsonable` (NaN/Infinity -> null), then `allow_nan=False`.

    kw: passed to `json.dumps` (indent, sort_keys, separators, ensure_ascii).
    Raises TypeError for an object JSON cannot represent (when no `default` handles it).
    """
    return json.dumps(to_jsonable(obj, default), allow_nan=False, **kw)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, default: Default | None = None) -> None:
    """Write `obj` as strict JSON to `path` atomically: the old file (if any) stays whole until the new one is
    complete. Raises TypeError (nothing written) for an object JSON cannot represent; OSError from the disk."""
    path = Path(path)
    text = dumps(obj, indent=indent, default=default) + "\n"
    # A name of this process and thread in the same folder (os.replace is atomic within one file system); opened
    # with the usual permissions, unlike mkstemp's owner-only ones.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_json_line(path: str | Path, obj: Any, *, default: Default | None = None) -> None:
    """Append `obj` as one strict JSON line to a JSON Lines file (created if missing), flushed on return."""
    line = dumps(obj, default=default) + "\n"
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(line)
