"""Import and export labels: CSV, picsift JSON, Label Studio JSON and COCO.

Export writes every image of the catalog (unlabelled ones with an empty label in CSV/JSON), so a
round trip keeps the full picture. Import matches images by path (as stored, or resolved), then by
content hash, then by a unique file name, and never silently overwrites a different existing label:
those are reported as conflicts unless `overwrite=True`, or recorded as proposals with
`as_proposals=True`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.errors import DatasetError
from picsift.jsonio import write_json
from picsift.store import ImageRow, Workspace

FORMATS = ("csv", "json", "labelstudio", "coco")


def _rows(ws: Workspace) -> list[ImageRow]:
    return ws.catalog.images(readable=None, include_excluded=True)


def export_labels(ws: Workspace, path: Path, fmt: str = "csv") -> int:
    """Write the catalog's labels to `path`; returns the number of labelled images written."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows = _rows(ws)
    classes = ws.catalog.classes()
    labelled = sum(r.label is not None for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image_id", "path", "sha256", "label", "split", "excluded"])
            for r in rows:
                w.writerow([r.id, r.path, r.sha256, r.label or "", r.split or "", int(r.excluded)])
    elif fmt == "json":
        payload = {
            "format": "picsift-labels",
            "version": 1,
            "classes": classes,
            "images": [
                {
                    "image_id": r.id,
                    "path": r.path,
                    "sha256": r.sha256,
                    "label": r.label,
                    "split": r.split,
                    "excluded": r.excluded,
                }
                for r in rows
            ],
        }
        write_json(path, payload, indent=1)
    elif fmt == "labelstudio":
        proposals: dict[int, dict[str, Any]] = {}
        for p in ws.catalog.proposals():
            proposals.setdefault(p["image_id"], p)
        tasks = []
        for r in rows:
            task: dict[str, Any] = {"id": r.id, "data": {"image": r.path, "sha256": r.sha256}}
            if r.label is not None:
                task["annotations"] = [{"result": [_ls_choice(r.label)]}]
            if r.id in proposals:
                p = proposals[r.id]
                task["predictions"] = [
                    {"model_version": p["origin"], "score": p["confidence"], "result": [_ls_choice(p["label"])]}
                ]
            tasks.append(task)
        write_json(path, tasks, indent=1)
    else:
        cat_id = {c: i + 1 for i, c in enumerate(classes)}
        coco = {
            "info": {"description": "picsift labels (image-level classification: one annotation per image)"},
            "images": [{"id": r.id, "file_name": r.path, "width": r.width, "height": r.height} for r in rows],
            "annotations": [
                {"id": i + 1, "image_id": r.id, "category_id": cat_id[r.label or ""]}
                for i, r in enumerate(x for x in rows if x.label is not None)
            ],
            "categories": [{"id": i, "name": c} for c, i in cat_id.items()],
        }
        write_json(path, coco, indent=1)
    return labelled


def _ls_choice(label: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}


@dataclass
class ImportReport:
    read: int = 0
    applied: int = 0
    unchanged: int = 0
    proposed: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "proposed": self.proposed,
            "conflicts": self.conflicts,
            "unmatched": self.unmatched,
        }


def _read_entries(path: Path) -> list[tuple[str | None, str | None, str]]:
    """(path, sha256, label) entries from any supported file; the format is detected from content."""
    if not path.is_file():
        raise DatasetError(f"labels file {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv" or not text.lstrip().startswith(("{", "[")):
        reader = csv.DictReader(text.splitlines())
        fields = {f.lower(): f for f in reader.fieldnames or []}
        path_key = next((fields[k] for k in ("path", "file", "filename", "file_name", "image") if k in fields), None)
        label_key = next((fields[k] for k in ("label", "class", "category") if k in fields), None)
        if label_key is None or (path_key is None and "sha256" not in fields):
            raise DatasetError(
                f"{path}: CSV needs a label column (label/class/category) and a path or sha256 column; "
                f"found columns {reader.fieldnames}"
            )
        return [
            (row.get(path_key) if path_key else None, row.get(fields.get("sha256", "")) or None, row[label_key])
            for row in reader
        ]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict) and data.get("format") == "picsift-labels":
        return [(d.get("path"), d.get("sha256"), d.get("label") or "") for d in data.get("images", [])]
    if isinstance(data, dict) and "categories" in data and "images" in data:
        names = {c["id"]: c["name"] for c in data["categories"]}
        files = {im["id"]: im.get("file_name") for im in data["images"]}
        return [(files.get(a["image_id"]), None, names.get(a["category_id"], "")) for a in data.get("annotations", [])]
    if isinstance(data, list):
        out: list[tuple[str | None, str | None, str]] = []
        for task in data:
            image = (task.get("data") or {}).get("image")
            label = ""
            for ann in task.get("annotations") or []:
                for res in ann.get("result") or []:
                    choices = (res.get("value") or {}).get("choices") or []
                    if choices:
                        label = str(choices[0])
            out.append((image, (task.get("data") or {}).get("sha256"), label))
        return out
    raise DatasetError(
        f"{path}: unrecognised labels file; expected CSV, picsift JSON, Label Studio JSON (a list of tasks) or COCO"
    )


def import_labels(
    ws: Workspace,
    path: Path,
    *,
    overwrite: bool = False,
    as_proposals: bool = False,
    annotator: str = "import",
) -> ImportReport:
    """Apply labels from a file to matching catalog images (see the module docstring for the rules)."""
    entries = _read_entries(path)
    rows = _rows(ws)
    by_path = {r.path: r for r in rows}
    by_resolved = {str(Path(r.path).resolve()): r for r in rows}
    by_sha: dict[str, ImageRow] = {}
    by_name: dict[str, list[ImageRow]] = {}
    for r in rows:
        by_sha.setdefault(r.sha256, r)
        by_name.setdefault(Path(r.path).name, []).append(r)
    report = ImportReport()
    proposals = []
    for file_path, sha, label in entries:
        label = (label or "").strip()
        if not label:
            continue
        report.read += 1
        row = None
        if file_path:
            if file_path.startswith("/data/local-files/?d="):  # Label Studio local storage URLs
                file_path = "/" + file_path.split("?d=", 1)[1].lstrip("/")
            row = by_path.get(file_path) or by_resolved.get(str(Path(file_path).resolve()))
        if row is None and sha:
            row = by_sha.get(sha)
        if row is None and file_path:
            named = by_name.get(Path(file_path).name, [])
            row = named[0] if len(named) == 1 else None
        if row is None:
            report.unmatched.append(file_path or sha or "?")
            continue
        if row.label == label:
            report.unchanged += 1
            continue
        if as_proposals:
            proposals.append((row.id, label, None))
            continue
        if row.label is not None and not overwrite:
            report.conflicts.append({"image_id": row.id, "path": row.path, "current": row.label, "file": label})
            continue
        ws.catalog.set_label(row.id, label, origin="import", annotator=annotator, expected_version=row.label_version)
        report.applied += 1
    if proposals:
        report.proposed = ws.catalog.propose_labels(proposals, origin="import", annotator=annotator)
    return report
