"""Feedback: corrections collected by the server, reviewed, and fed into the next training run.

Flow: the server stores each correction (label, comment, the image's bytes under
`<workspace>/feedback/images/`, their sha256) as a *pending* row of the `feedback` table. A reviewer
accepts or rejects it (`picsift feedback accept|reject`, or the labelling app through `FeedbackStore`).
Accepting imports the image into the catalog as an ordinary labelled image with split "feedback" and
a label event of origin "feedback"; `picsift train --with-feedback` adds those images to the training
set (`accepted_feedback_rows`). If the bytes are already in the catalog, accepting relabels that image
instead (the feedback was a correction of an existing label).
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from picsift.atomic import atomic_path
from picsift.data.formats import suffix_for_format
from picsift.data.images import probe
from picsift.errors import ConfigError, LabelError, NotFoundError, WorkspaceError
from picsift.filenames import inside, unique_names
from picsift.labels_text import normalize_label
from picsift.store import ImageRow, Workspace
from picsift.store.catalog import write_label
from picsift.store.feedback import Feedback, ensure_feedback_table
from picsift.store.schema import Image, utcnow

FEEDBACK_SPLIT = "feedback"
MAX_LABEL_CHARS = 200


@dataclass(frozen=True)
class FeedbackItem:
    """A plain view of one feedback row."""

    id: int
    status: str
    label: str
    comment: str
    prediction_id: str | None
    predicted_label: str | None
    confidence: float | None
    model_version: str | None
    sha256: str | None
    image_path: str | None
    image_id: int | None
    reviewer: str | None
    created_at: str
    reviewed_at: str | None

    @classmethod
    def from_orm(cls, f: Feedback) -> FeedbackItem:
        """A detached FeedbackItem copied from a `Feedback` row (times as ISO strings)."""
        return cls(
            id=f.id,
            status=f.status,
            label=f.label,
            comment=f.comment or "",
            prediction_id=f.prediction_id,
            predicted_label=f.predicted_label,
            confidence=f.confidence,
            model_version=f.model_version,
            sha256=f.sha256,
            image_path=f.image_path,
            image_id=f.image_id,
            reviewer=f.reviewer,
            created_at=f.created_at.isoformat(),
            reviewed_at=f.reviewed_at.isoformat() if f.reviewed_at else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The item's fields as a plain dict (JSON-ready)."""
        return dict(self.__dict__)


def validate_label(label: Any) -> str:
    """The label in its normal form (`normalize_label`); ConfigError when not text, empty or too long."""
    try:
        label = normalize_label(label)
    except LabelError as e:
        raise LabelError(f"feedback needs a non-empty string 'label' (the correct class): {e}") from e
    if len(label) > MAX_LABEL_CHARS:
        raise ConfigError(f"feedback label is {len(label)} characters long; at most {MAX_LABEL_CHARS} allowed")
    return label


class FeedbackStore:
    """Feedback rows of one workspace, and the images they carry."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        ensure_feedback_table(ws.catalog.engine)

    @property
    def image_dir(self) -> Path:
        """feedback/images/ in the workspace: where feedback images are kept, content-addressed."""
        return self.ws.root / "feedback" / "images"

    def _keep_image(self, data: bytes) -> tuple[str, str]:
        """Store the bytes content-addressed; returns (sha256, path relative to the workspace)."""
        info = probe(data)  # raises ImageDecodeError for anything that is not a whole image
        sha = hashlib.sha256(data).hexdigest()
        rel = Path("feedback") / "images" / sha[:2] / f"{sha}{suffix_for_format(info.format) or '.img'}"
        target = self.ws.root / rel
        if not target.exists():  # two writers of the same bytes each write their own temporary file
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        return sha, str(rel)

    def add(
        self,
        label: str,
        *,
        image: bytes | None = None,
        prediction_id: str | None = None,
        comment: str = "",
        predicted_label: str | None = None,
        confidence: float | None = None,
        model_version: str | None = None,
    ) -> FeedbackItem:
        """Store one pending feedback item (and its image, if given) and return it. LabelError / ConfigError for an
        empty or too long label; ImageDecodeError when `image` is not a whole image."""
        label = validate_label(label)
        sha = rel = None
        if image is not None:
            sha, rel = self._keep_image(image)
        with self.ws.catalog.session() as s:
            row = Feedback(
                prediction_id=prediction_id,
                label=label,
                comment=(comment or "")[:5000],
                predicted_label=predicted_label,
                confidence=confidence,
                model_version=model_version,
                sha256=sha,
                image_path=rel,
                status="pending",
            )
            s.add(row)
            s.flush()
            return FeedbackItem.from_orm(row)

    def items(self, status: str | None = None) -> list[FeedbackItem]:
        """Feedback items ordered by id, of one status if given. ConfigError for a status other than pending,
        accepted or rejected."""
        if status is not None and status not in ("pending", "accepted", "rejected"):
            raise ConfigError(f"feedback status must be pending, accepted or rejected; got {status!r}")
        q = select(Feedback).order_by(Feedback.id)
        if status is not None:
            q = q.where(Feedback.status == status)
        with self.ws.catalog.session() as s:
            return [FeedbackItem.from_orm(f) for f in s.scalars(q)]

    def get(self, feedback_id: int) -> FeedbackItem:
        """The feedback item `feedback_id`. NotFoundError when there is none."""
        with self.ws.catalog.session() as s:
            f = s.get(Feedback, feedback_id)
            if f is None:
                raise NotFoundError(f"no feedback with id {feedback_id} in {self.ws.root}")
            return FeedbackItem.from_orm(f)

    def _pending(self, feedback_id: int) -> FeedbackItem:
        item = self.get(feedback_id)
        if item.status != "pending":
            raise ConfigError(f"feedback {feedback_id} was already {item.status}; only pending feedback is reviewed")
        return item

    def accept(self, ids: list[int], reviewer: str = "picsift") -> list[FeedbackItem]:
        """Accept pending feedback: its image enters the catalog labelled (split "feedback"). Each item in one
        transaction (image row, label, status): a kill or a full disk leaves it pending and the catalog as it was.
        """
        out = []
        for fid in ids:
            item = self._pending(fid)
            if item.image_path is None or item.sha256 is None:
                raise ConfigError(
                    f"feedback {fid} carries no image, so it cannot become training data; reject it or "
                    "resend it with the image"
                )
            with self.ws.catalog.session() as s:
                f = s.get(Feedback, fid)
                if f is None:  # deleted concurrently
                    raise NotFoundError(f"feedback {fid} disappeared during review")
                if f.status != "pending":
                    raise ConfigError(f"feedback {fid} was {f.status} meanwhile; only pending feedback is reviewed")
                image_id = self._import_image(s, item)
                write_label(s, image_id, normalize_label(item.label), origin="feedback", annotator=reviewer)
                f.status, f.reviewer, f.reviewed_at, f.image_id = "accepted", reviewer, utcnow(), image_id
                s.flush()
                out.append(FeedbackItem.from_orm(f))
        return out

    def reject(self, ids: list[int], reviewer: str = "picsift") -> list[FeedbackItem]:
        """Mark pending feedback rejected by `reviewer`; returns the updated items. NotFoundError for an unknown id,
        ConfigError for one already reviewed."""
        out = []
        for fid in ids:
            self._pending(fid)
            with self.ws.catalog.session() as s:
                f = s.get(Feedback, fid)
                if f is None:
                    raise NotFoundError(f"feedback {fid} disappeared during review")
                f.status, f.reviewer, f.reviewed_at = "rejected", reviewer, utcnow()
                s.flush()
                out.append(FeedbackItem.from_orm(f))
        return out

    def _import_image(self, s: Session, item: FeedbackItem) -> int:
        """Within the transaction `s`: the catalog id of the feedback's image, adding it (split "feedback") when
        its bytes are not catalogued yet."""
        if item.image_path is None or item.sha256 is None:
            raise ConfigError(f"feedback {item.id} carries no image")
        path = (self.ws.root / item.image_path).resolve()
        if not path.is_file():
            raise WorkspaceError(f"feedback {item.id}: its image {path} is missing from the workspace")
        existing = s.scalars(
            select(Image).where(Image.sha256 == item.sha256, Image.duplicate_of.is_(None)).order_by(Image.id)
        ).first()
        if existing is not None:
            return int(existing.id)
        info = probe(path)
        image = Image(
            sha256=item.sha256,
            path=str(path),
            source="feedback",
            source_kind="feedback",
            byte_size=path.stat().st_size,
            width=info.width,
            height=info.height,
            format=info.format,
            mode=info.mode,
            n_frames=info.n_frames,
            readable=True,
            split=FEEDBACK_SPLIT,
            split_origin="feedback",
        )
        s.add(image)
        s.flush()
        return int(image.id)

    def export(self, out_dir: Path, status: str | None = "accepted") -> dict[str, Any]:
        """Copy feedback images into `out_dir/<label>/` plus `feedback.csv`; returns counts.

        Each label's folder is named by `picsift.filenames.unique_names` (a label `..` or `a/b` stays
        inside `out_dir`; `Cat` and `cat` stay two folders), and every path is checked to lie inside.
        """
        items = self.items(status)
        out_dir.mkdir(parents=True, exist_ok=True)
        folders = unique_names(
            (it.label for it in items), fallback="unnamed", allow_hidden=False, taken=["feedback.csv"]
        )
        copied = 0
        with (out_dir / "feedback.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "id",
                    "status",
                    "label",
                    "predicted_label",
                    "confidence",
                    "prediction_id",
                    "sha256",
                    "file",
                    "comment",
                    "created_at",
                ]
            )
            for it in items:
                rel = ""
                if it.image_path:
                    src = self.ws.root / it.image_path
                    if src.is_file():
                        dst = inside(out_dir, folders[it.label], src.name)
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(src, dst)
                        rel = str(dst.relative_to(out_dir))
                        copied += 1
                w.writerow(
                    [
                        it.id,
                        it.status,
                        it.label,
                        it.predicted_label or "",
                        it.confidence or "",
                        it.prediction_id or "",
                        it.sha256 or "",
                        rel,
                        it.comment,
                        it.created_at,
                    ]
                )
        return {"out": str(out_dir), "rows": len(items), "images": copied}


def accepted_feedback_rows(ws: Workspace) -> list[ImageRow]:
    """Accepted feedback images (catalog split "feedback"): extra training rows for `--with-feedback`."""
    ensure_feedback_table(ws.catalog.engine)
    return ws.catalog.images(split=FEEDBACK_SPLIT, labeled=True, include_duplicates=False)
