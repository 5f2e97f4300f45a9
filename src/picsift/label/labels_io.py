"""Import and export labels: CSV, picsift JSON, Label Studio JSON and COCO.

Export writes every image of the catalog (unlabelled ones with an empty label in CSV/JSON), so a
round trip keeps the full picture. Import also reads Label Studio's JSON-MIN and CSV exports (see
`picsift.label.label_files`); it matches images by path (as stored, or resolved), then by content
hash, then by file name (the longest matching run of parent folders breaking ties), and never
silently overwrites a different existing label: those are reported as conflicts unless
`overwrite=True`, or recorded as proposals with `as_proposals=True`. An image the file labels
differently twice (two annotators) or with several choices is reported, not applied.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.errors import DatasetError
from picsift.jsonio import write_json
from picsift.label.label_files import LabelRecord, read_label_file, upload_name
from picsift.store import ImageRow, LabelChange, Workspace
from picsift.suggest import closest_names

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
    """What an import did. `read`: records with a label; `unmatched`: references (first of each) that name
    no catalog image; `disagreements`: images the file gives different labels (several annotators or
    rows); `multiple`: images given several labels at once (the catalog holds one label per image)."""

    format: str = ""
    read: int = 0
    applied: int = 0
    unchanged: int = 0
    proposed: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    multiple: list[dict[str, Any]] = field(default_factory=list)
    new_classes: list[dict[str, Any]] = field(default_factory=list)  # {class, images, similar: [known classes]}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "new_classes": self.new_classes,
            "format": self.format,
            "read": self.read,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "proposed": self.proposed,
            "conflicts": self.conflicts,
            "unmatched": self.unmatched,
            "disagreements": self.disagreements,
            "multiple": self.multiple,
        }


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", path) if p]


class _Matcher:
    """Finds the catalog image a record names: by stored or resolved path, content hash, then file name
    (a Label Studio upload prefix stripped), ties broken by the longest matching run of parent folders."""

    def __init__(self, rows: list[ImageRow]) -> None:
        self.by_path = {r.path: r for r in rows}
        self.by_resolved = {str(Path(r.path).resolve()): r for r in rows}
        self.by_sha: dict[str, ImageRow] = {}
        self.by_name: dict[str, list[ImageRow]] = {}
        for r in rows:
            self.by_sha.setdefault(r.sha256, r)
            self.by_name.setdefault(Path(r.path).name, []).append(r)

    def find(self, path: str | None, sha: str | None) -> tuple[ImageRow | None, str]:
        """The image, or None and why not."""
        if path:
            row = self.by_path.get(path) or self.by_resolved.get(str(Path(path).resolve()))
            if row is not None:
                return row, ""
        if sha and sha in self.by_sha:
            return self.by_sha[sha], ""
        parts = _parts(path or "")
        if not parts:
            return None, ""
        candidates = self.by_name.get(parts[-1], [])
        stripped = upload_name(parts[-1])
        if not candidates and stripped:
            parts[-1] = stripped
            candidates = self.by_name.get(stripped, [])
        if len(candidates) > 1:
            common = [_common_tail(_parts(r.path), parts) for r in candidates]
            candidates = [r for r, n in zip(candidates, common, strict=True) if n == max(common)]
        if len(candidates) == 1:
            return candidates[0], ""
        return None, f" ({len(candidates)} catalog images are named {parts[-1]})" if candidates else ""


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _new_classes(labels: list[str], known: set[str]) -> list[dict[str, Any]]:
    """The labels of `labels` that are no class yet, each with its image count and the known classes it is close
    to (case-blind, `picsift.suggest.closest_names`): "Bird" beside "bird" is more likely a spelling than a class."""
    counts = Counter(label for label in labels if label not in known)
    return [
        {"class": name, "images": n, "similar": closest_names(name, sorted(known), n=2, cutoff=0.8)}
        for name, n in sorted(counts.items())
    ]


def import_labels(
    ws: Workspace,
    path: Path,
    *,
    overwrite: bool = False,
    as_proposals: bool = False,
    annotator: str = "import",
    label_field: str | None = None,
) -> ImportReport:
    """Apply labels from a file to matching catalog images (see the module docstring for the rules).

    Reads any format of `picsift.label.label_files` (`label_field` picks the class field of an export
    with several). The annotator recorded is the file's (Label Studio's `completed_by`/`annotator`) when
    it names one, else `annotator`. Every label and proposal is written in one transaction: a kill or a full
    disk leaves the catalog as it was. Raises DatasetError when the file holds no label at all,
    LabelConflictError when an image was relabelled while the file was read (nothing is written then),
    DiskError when the disk is full or read-only.
    """
    labels_file = read_label_file(path, label_field)
    matcher = _Matcher(_rows(ws))
    report = ImportReport(format=labels_file.format)
    by_image: dict[int, tuple[ImageRow, list[LabelRecord]]] = {}
    for record in labels_file.records:
        if not record.labels:
            continue
        report.read += 1
        row, why = matcher.find(record.path, record.sha256)
        if row is None:
            report.unmatched.append((record.path or record.sha256 or record.where) + why)
            continue
        by_image.setdefault(row.id, (row, []))[1].append(record)
    changes: list[LabelChange] = []
    proposals: list[LabelChange] = []
    for row, records in by_image.values():
        answers = {r.labels for r in records}
        if len(answers) > 1:
            given = {r.annotator or r.where: ", ".join(r.labels) for r in records}
            report.disagreements.append({"image_id": row.id, "path": row.path, "labels": given})
            continue
        (labels,) = answers
        if len(labels) > 1:
            report.multiple.append({"image_id": row.id, "path": row.path, "labels": list(labels)})
            continue
        label = labels[0]
        who = ", ".join(dict.fromkeys(r.annotator for r in records if r.annotator))[:100] or annotator
        if row.label == label:
            report.unchanged += 1
            continue
        if as_proposals:
            proposals.append(LabelChange(row.id, label, "import", who))
            continue
        if row.label is not None and not overwrite:
            report.conflicts.append({"image_id": row.id, "path": row.path, "current": row.label, "file": label})
            continue
        changes.append(LabelChange(row.id, label, "import", who, row.label_version))
    known = set(ws.catalog.classes())
    report.new_classes = _new_classes([c.label for c in changes + proposals if c.label is not None], known)
    # One transaction: a kill, a full disk or a label changed meanwhile leaves the catalog as it was.
    # An image the file labels has its pending proposals withdrawn (as a label set in the app does): one left
    # pending would answer 409 to its accept forever, the label having moved on.
    ws.catalog.set_labels(changes, proposals=proposals, close_proposals=True)
    report.applied, report.proposed = len(changes), len(proposals)
    return report
