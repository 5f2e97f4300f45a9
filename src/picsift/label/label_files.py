"""Reading label files: picsift CSV/JSON, COCO, and Label Studio's JSON, JSON-MIN and CSV exports.

The format is detected from the content. Label Studio exports (https://labelstud.io/guide/export):
- JSON: a list of tasks `{"data": {"image": ...}, "annotations": [{"result": [{"type": "choices",
  "from_name": "choice", "value": {"choices": ["dog"]}}], "was_cancelled": false, "completed_by": 1}]}`;
  cancelled (skipped) annotations are ignored, every other annotation is one record with its annotator;
- JSON-MIN: one flat object per annotation, `{"image": ..., "choice": "dog", "annotator": ...}`, where
  the choices field (named after the `<Choices name=...>` of the labelling config) holds a string for
  one choice and `{"choices": [...]}` for several;
- CSV: the JSON-MIN fields as columns, several choices as that JSON text.

Image references are turned into paths: `/data/local-files/?d=photos%2Fdog.png` (local storage,
relative to its document root) becomes `photos/dog.png`, other URLs their decoded path, and files
uploaded through Label Studio keep their `/data/upload/<project>/8f3a2b1c-dog.png` name, whose prefix
the catalog matching strips (`upload_name`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from picsift.errors import DatasetError, LabelError
from picsift.ingest.delimited import (
    column_count_error,
    line_break_error,
    read_rows,
    read_utf8_text,
    single_line,
    sniff_delimiter,
)
from picsift.labels_text import normalize_label

TRIED = "picsift CSV/JSON, COCO, Label Studio JSON, JSON-MIN and CSV"
PATH_KEYS = ("path", "file", "filename", "file_name", "image", "img", "image_url", "url")
LABEL_KEYS = ("label", "class", "category", "choice", "choices")
# Columns that are never the label: picsift's own export and Label Studio's per-annotation fields.
_NOT_LABELS = frozenset(
    {"image_id", "sha256", "split", "excluded", "id", "annotator", "annotation_id", "created_at", "updated_at"}
    | {"lead_time", "agreement", "history", "width", "height"}
)
_LS_FIELDS = frozenset({"annotator", "annotation_id", "lead_time"})
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")
# Columns of a CSV label file that name an image or its class: never several lines.
_SINGLE_LINE_KEYS = frozenset(PATH_KEYS + LABEL_KEYS + ("sha256",))


def _has_break(text: str) -> bool:
    return len(text.splitlines()) > 1


@dataclass(frozen=True)
class LabelRecord:
    """One labelled (or unlabelled) image as a file names it."""

    path: str | None  # as written, Label Studio URLs decoded to a path
    sha256: str | None
    labels: tuple[str, ...]  # empty: no label; several: a multiple-choice answer
    annotator: str | None  # who labelled it, when the file says
    where: str  # "labels.csv line 4", "export.json task 12"


@dataclass(frozen=True)
class LabelFile:
    """A label file as read: its detected format and its label records."""

    format: str  # "picsift CSV", "Label Studio JSON", ...; "" when none fits
    records: list[LabelRecord]
    read: str  # what was read, for messages: "12 rows", "3 tasks"


def upload_name(name: str) -> str | None:
    """`dog_0.png` for `8f3a2b1c-dog_0.png` (the prefix Label Studio gives uploaded files), else None."""
    m = _UPLOAD_PREFIX.match(name)
    return m.group(1) if m else None


def image_reference_path(ref: str) -> str:
    """The file path an image reference names: `/data/local-files/?d=a%2Fb.png` -> `a/b.png`,
    `http://host/x/c%20d.png` -> `/x/c d.png`; a plain path is returned unchanged."""
    try:
        parts = urlsplit(ref)
    except ValueError:  # not a URL after all (`http://[::1/a.png`: an unclosed IPv6 host)
        return ref
    if parts.path.rstrip("/").endswith("/data/local-files"):
        for item in parts.query.split("&"):
            if item.startswith("d="):
                return unquote(item[2:])
    if parts.scheme in ("http", "https", "s3", "gs", "azure-blob") or ref.startswith("/data/"):
        return unquote(parts.path)
    return ref


def _choices(value: Any) -> tuple[str, ...]:
    """Labels from a choices value: "dog", {"choices": ["dog", "cat"]}, a list of either, or JSON text."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                return _choices(json.loads(text))
            except (ValueError, RecursionError):  # not JSON after all: the text is the label
                pass
        return (text,) if text else ()
    if isinstance(value, dict):
        return _choices(value.get("choices"))
    if isinstance(value, list):
        return tuple(c for v in value for c in _choices(v))
    text = str(value).strip()
    return (text,) if text else ()


def _annotator(value: Any) -> str | None:
    """Label Studio's `completed_by` / `annotator`: an email, a user id, or {"email": ..., "id": ...}."""
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("id")
    if value is None or value == "":
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return f"label-studio user {value}"
    return str(value)[:100]


def _pick_label_key(keys: list[str], path_key: str | None, label_field: str | None, name: str) -> str | None:
    if label_field is not None:
        if label_field not in keys:
            raise DatasetError(f"{name}: no field {label_field!r}; fields: {', '.join(keys)}")
        return label_field
    lowered = {k.lower(): k for k in keys}
    known = next((lowered[k] for k in LABEL_KEYS if k in lowered), None)
    if known is not None:
        return known
    rest = [k for k in keys if k != path_key and k.lower() not in _NOT_LABELS]
    if len(rest) > 1:
        raise DatasetError(
            f"no labels recognised in {name}: cannot tell which field holds the label ({', '.join(rest)}); "
            "choose one with --field"
        )
    return rest[0] if rest else None


def _flat_records(
    rows: list[tuple[str, dict[str, Any]]], keys: list[str], name: str, label_field: str | None
) -> tuple[list[LabelRecord], bool]:
    """Records of flat rows (CSV, JSON-MIN) with fields `keys`; returns them and whether a path (or
    sha256) and a label field were found."""
    lowered = {k.lower(): k for k in keys}
    path_key = next((lowered[k] for k in PATH_KEYS if k in lowered), None)
    sha_key = lowered.get("sha256")
    if path_key is None and sha_key is None:
        return [], False
    label_key = _pick_label_key(keys, path_key, label_field, name)
    if label_key is None:
        return [], False
    annotator_key = lowered.get("annotator")
    records = []
    for where, row in rows:
        ref = row.get(path_key) if path_key else None
        records.append(
            LabelRecord(
                image_reference_path(str(ref)) if ref else None,
                str(row[sha_key]) if sha_key and row.get(sha_key) else None,
                _choices(row.get(label_key)),
                _annotator(row.get(annotator_key)) if annotator_key else None,
                where,
            )
        )
    return records, True


def _read_delimited(text: str, name: str, label_field: str | None) -> LabelFile:
    delimiter = sniff_delimiter(text)
    rows = read_rows(text, name, delimiter, multiline=True)  # other columns (a comment) may hold line breaks
    header = next(rows, None)
    if header is None:
        raise DatasetError(f"no labels recognised in {name}: the file is empty; tried {TRIED}")
    if header.end > header.line:
        raise DatasetError(line_break_error(name, header, "header"))
    single_line = {c for c in header.cells if c.lower() in _SINGLE_LINE_KEYS or c == label_field}
    flat: list[tuple[str, dict[str, Any]]] = []
    for row in rows:
        if len(row.cells) != len(header.cells):
            raise DatasetError(column_count_error(name, row, header.cells, delimiter))
        broken = [c for c, v in zip(header.cells, row.cells, strict=True) if c in single_line and _has_break(v)]
        if broken:
            raise DatasetError(line_break_error(name, row, broken[0]))
        flat.append((f"{name} line {row.line}", dict(zip(header.cells, row.cells, strict=True))))
    records, found = _flat_records(flat, header.cells, name, label_field)
    if not found:
        raise DatasetError(
            f"no labels recognised in {name}: a CSV needs a label column ({'/'.join(LABEL_KEYS)}, or the "
            f"Label Studio choices column) and a path or sha256 column; found columns {', '.join(header.cells)}; "
            f"tried {TRIED}"
        )
    ls = _LS_FIELDS & {c.lower() for c in header.cells}
    return LabelFile("Label Studio CSV" if ls else "picsift CSV", records, f"{len(flat)} rows")


def _image_of(data: dict[str, Any]) -> str | None:
    """The image reference of a Label Studio task's data: `image`, another known key, or the one path."""
    for key in PATH_KEYS:
        if isinstance(data.get(key), str):
            return str(data[key])
    strings = [v for v in data.values() if isinstance(v, str) and ("/" in v or "." in v)]
    return strings[0] if len(strings) == 1 else None


def _json_kind(value: Any) -> str:
    """What a JSON value is, for messages: "an object", "a list", "text", "a number", "true/false", "null"."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    return "null" if value is None else "a number"


def _objects(value: Any, where: str) -> list[dict[str, Any]]:
    """`value` (a JSON list of objects; absent or null: none) as a list; DatasetError naming `where` otherwise."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DatasetError(f"{where}: expected a list of objects, got {_json_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise DatasetError(f"{where} item {i + 1}: expected an object, got {_json_kind(item)}")
    return value


def _text(value: Any, where: str, field: str) -> str | None:
    """A path, hash or id field as text (a number as its digits; absent, null or "": None); DatasetError naming
    the field otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DatasetError(f"{where}: {field} must be text, got {_json_kind(value)}")


def _annotations(task: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return _objects(task.get("annotations") or task.get("completions"), f"{where} annotations")


def _choice_list(result: dict[str, Any]) -> list[Any] | None:
    """The `value.choices` list of one Label Studio result, or None when it has none."""
    value = result.get("value")
    choices = value.get("choices") if isinstance(value, dict) else None
    return choices if isinstance(choices, list) else None


def _label_studio_tasks(tasks: list[dict[str, Any]], name: str, label_field: str | None) -> LabelFile:
    fields = {
        str(res.get("from_name"))
        for i, task in enumerate(tasks)
        for j, ann in enumerate(_annotations(task, f"{name} task {i + 1}"))
        for res in _objects(ann.get("result"), f"{name} task {i + 1} annotation {j + 1} result")
        if _choice_list(res) is not None
    }
    if label_field is not None and fields and label_field not in fields:
        raise DatasetError(f"{name}: no choices named {label_field!r}; the export has {', '.join(sorted(fields))}")
    if label_field is None and len(fields) > 1:
        raise DatasetError(
            f"{name}: choices from several fields ({', '.join(sorted(fields))}); choose the class with --field"
        )
    records = []
    for i, task in enumerate(tasks):
        where = f"{name} task {_text(task.get('id'), f'{name} task {i + 1}', 'id') or i + 1}"
        data = task.get("data") or {}
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: data must be an object, got {_json_kind(data)}")
        ref = _image_of(data)
        path = image_reference_path(ref) if ref else None
        sha = _text(data.get("sha256"), where, "data.sha256")
        for ann in _annotations(task, where):
            if ann.get("was_cancelled") or ann.get("skipped"):
                continue
            labels = tuple(
                label
                for res in ann.get("result") or []
                if label_field is None or res.get("from_name") == label_field
                for c in _choice_list(res) or []
                for label in _choices(c)
            )
            records.append(LabelRecord(path, sha, labels, _annotator(ann.get("completed_by")), where))
    return LabelFile("Label Studio JSON", records, f"{len(tasks)} tasks, cancelled annotations ignored")


def _picsift_json(data: dict[str, Any], name: str) -> LabelFile:
    records = []
    for i, d in enumerate(_objects(data.get("images"), f"{name} images")):
        where = f"{name} image {i + 1}"
        path, sha = _text(d.get("path"), where, "path"), _text(d.get("sha256"), where, "sha256")
        records.append(LabelRecord(path, sha, _choices(d.get("label")), None, where))
    return LabelFile("picsift JSON", records, f"{len(records)} images")


def _coco_id(item: dict[str, Any], key: str, where: str) -> str | None:
    """An id field of a COCO item (a number or text) as text, to look it up; DatasetError naming it otherwise."""
    return _text(item.get(key), where, key)


def _coco(data: dict[str, Any], name: str) -> LabelFile:
    names = {
        _coco_id(c, "id", f"{name} categories item {i + 1}"): c.get("name")
        for i, c in enumerate(_objects(data["categories"], f"{name} categories"))
    }
    files = {
        _coco_id(im, "id", f"{name} images item {i + 1}"): _text(im.get("file_name"), f"{name} images item {i + 1}",
                                                                  "file_name")
        for i, im in enumerate(_objects(data["images"], f"{name} images"))
    }  # fmt: skip
    records = []
    for i, a in enumerate(_objects(data.get("annotations"), f"{name} annotations")):
        where = f"{name} annotations item {i + 1}"
        image, category = _coco_id(a, "image_id", where), _coco_id(a, "category_id", where)
        records.append(LabelRecord(files.get(image), None, _choices(names.get(category)), None, f"{name} ann {i}"))
    return LabelFile("COCO", records, f"{len(records)} annotations")


def _read_json(data: Any, name: str, label_field: str | None) -> LabelFile:
    if isinstance(data, dict) and data.get("format") == "picsift-labels":
        return _picsift_json(data, name)
    if isinstance(data, dict) and "categories" in data and "images" in data:
        return _coco(data, name)
    if isinstance(data, dict) and "data" in data:
        data = [data]  # one Label Studio task
    if isinstance(data, list) and all(isinstance(t, dict) for t in data):
        if any(k in t for t in data for k in ("annotations", "completions", "data")):
            return _label_studio_tasks(data, name, label_field)
        rows = [(f"{name} item {i + 1}", t) for i, t in enumerate(data)]
        records, found = _flat_records(rows, list(dict.fromkeys(k for t in data for k in t)), name, label_field)
        return LabelFile("Label Studio JSON-MIN" if found else "", records, f"{len(rows)} items")
    raise DatasetError(f"no labels recognised in {name}: unrecognised JSON; tried {TRIED}")


def _checked(record: LabelRecord) -> LabelRecord:
    """The record with its labels in normal form (`normalize_label`); DatasetError naming the record's place
    ("labels.csv line 4: a label is at most 1000 characters long ...", "... cannot hold a line break") for one
    that is no label, so that a bad file is refused whole before any label is applied."""
    try:
        return replace(record, labels=tuple(normalize_label(single_line(x)) for x in record.labels))
    except LabelError as e:
        raise DatasetError(f"{record.where}: {e}") from e


def read_label_file(path: Path, label_field: str | None = None) -> LabelFile:
    """The records of a label file, its format detected from the content (see the module docstring).

    `label_field` names the field (Label Studio `from_name`, CSV column) holding the class when there
    are several. Raises DatasetError naming the file (and line) when it cannot be read, or when no
    record carries a label: "no labels recognised in export.json: tried ...".
    """
    if not path.is_file():
        raise DatasetError(f"labels file {path} does not exist")
    text = read_utf8_text(path)
    name = path.name
    if path.suffix.lower() in (".csv", ".tsv") or not text.lstrip().startswith(("{", "[")):
        result = _read_delimited(text, name, label_field)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{name} line {e.lineno}: not valid JSON ({e.msg})") from e
        except ValueError as e:  # an integer of over 4300 digits (Python's limit on converting them)
            raise DatasetError(f"{name}: not valid JSON ({e})") from e
        except RecursionError as e:
            raise DatasetError(f"{name}: not a label file (lists or objects nested too deeply)") from e
        try:
            result = _read_json(data, name, label_field)
        except RecursionError as e:  # a label of lists within lists, hundreds deep
            raise DatasetError(f"{name}: not a label file (a label nested too deeply)") from e
    result = replace(result, records=[_checked(r) for r in result.records])
    if not any(r.labels for r in result.records):
        seen = f"read as {result.format} ({result.read}), none with a label; " if result.format else ""
        raise DatasetError(f"no labels recognised in {name}: {seen}tried {TRIED}")
    return result
