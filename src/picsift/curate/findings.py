"""The one record every check produces: a Finding (kind, images, score, one-line explanation, details)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.errors import WorkspaceError
from picsift.jsonio import write_json

# Every kind a check can emit, with the check that emits it (the report groups by check).
KINDS: dict[str, str] = {
    "exact_duplicate": "duplicates",
    "near_duplicate": "duplicates",
    "split_leakage": "duplicates",
    "conflicting_labels": "duplicates",
    "unreadable": "quality",
    "too_small": "quality",
    "extreme_aspect": "quality",
    "blurry": "quality",
    "too_dark": "quality",
    "too_bright": "quality",
    "low_information": "quality",
    "grayscale": "quality",
    "outlier": "outliers",
    "class_outlier": "outliers",
    "label_issue": "labels",
    "tiny_class": "imbalance",
    "class_imbalance": "imbalance",
}
CHECKS = ("duplicates", "quality", "outliers", "labels", "imbalance")


@dataclass(frozen=True)
class Finding:
    """One problem. `image_ids` holds one image, or a whole group for duplicates (first = the one to keep).

    `score` is comparable within a kind only: higher means more certainly or more severely a problem.
    """

    kind: str
    image_ids: tuple[int, ...]
    score: float
    explanation: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def check(self) -> str:
        """The check that reports this kind of finding ("duplicates", "quality", ...)."""
        return KINDS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data (score rounded to 6 decimals), as findings.json stores it."""
        return {
            "kind": self.kind,
            "check": self.check,
            "image_ids": list(self.image_ids),
            "score": round(float(self.score), 6),
            "explanation": self.explanation,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        """The finding `to_dict` wrote (KeyError or ValueError for a malformed entry)."""
        return cls(
            kind=str(d["kind"]),
            image_ids=tuple(int(i) for i in d["image_ids"]),
            score=float(d["score"]),
            explanation=str(d["explanation"]),
            details=dict(d.get("details") or {}),
        )


def counts_by_kind(findings: list[Finding]) -> dict[str, int]:
    """{kind: number of findings} for the kinds present, in the order of KINDS."""
    c = Counter(f.kind for f in findings)
    return {k: c[k] for k in KINDS if c[k]}


def save_findings(path: Path, findings: list[Finding], meta: dict[str, Any]) -> None:
    """Write `meta`, the counts and the findings to the JSON file `path` atomically."""
    doc = {**meta, "counts": counts_by_kind(findings), "findings": [f.to_dict() for f in findings]}
    write_json(path, doc, indent=1, default=str)  # atomic: readers never see a half-written file


def load_findings(path: Path) -> tuple[list[Finding], dict[str, Any]]:
    """The findings and the rest of the file saved at `path`; WorkspaceError when it is missing or unreadable."""
    if not path.exists():
        raise WorkspaceError(f"no findings at {path}: run `picsift clean` first")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WorkspaceError(f"cannot read findings {path}: {e}; run `picsift clean` again") from e
    findings = [Finding.from_dict(d) for d in doc.get("findings", [])]
    meta = {k: v for k, v in doc.items() if k != "findings"}
    return findings, meta
