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
import dataclasses
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from picsift.atomic import atomic_path
from picsift.data.formats import suffix_for_format
from picsift.data.images import probe
from picsift.errors import ConfigError, ConflictError, LabelError, NotFoundError, WorkspaceError
from picsift.filenames import inside, unique_names
from picsift.labels_text import normalize_label
from picsift.store import ImageRow, Workspace
from picsift.store.catalog import write_label
from picsift.store.feedback import Feedback, ensure_feedback_table
from picsift.store.schema import Image, utcnow

FEEDBACK_SPLIT = "feedback"


class FeedbackConflictError(ConflictError):
    """The feedback item was reviewed already (by someone else, or at the same moment): it is no longer pending."""


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
    new_class: bool = False  # set by `accept`: no catalog image had this label before (training gains a class)

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
    """The label in its normal form (`normalize_label`); LabelError when not text, empty or longer than
    MAX_LABEL_CHARS (the one limit of every label)."""
    try:
        label = normalize_label(label)
    except LabelError as e:
        raise LabelError(f"feedback needs a non-empty string 'label' (the correct class): {e}") from e
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

    def image_file(self, item: FeedbackItem) -> Path | None:
        """The file holding the item's image, resolved: only a file inside the workspace (a stored path edited to
        point elsewhere, or a link planted in its place that leads out, gives None); None without an image."""
        if not item.image_path:
            return None
        root = self.ws.root.resolve()
        path = (root / item.image_path).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None

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

    def _claim(self, s: Session, feedback_id: int, status: str, reviewer: str) -> None:
        """Move a pending item to `status` by one conditional UPDATE (`WHERE status = 'pending'`), the first write of
        the session's transaction: of two reviewers claiming it at once exactly one succeeds (PostgreSQL re-checks
        the condition after waiting for the row lock; SQLite serialises the writes). NotFoundError for an unknown
        id, FeedbackConflictError (HTTP 409) for one already reviewed."""
        done = s.execute(
            update(Feedback)
            .where(Feedback.id == feedback_id, Feedback.status == "pending")
            .values(status=status, reviewer=reviewer, reviewed_at=utcnow())
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            return
        current = s.get(Feedback, feedback_id)
        if current is None:
            raise NotFoundError(f"no feedback with id {feedback_id} in {self.ws.root}")
        raise FeedbackConflictError(
            f"feedback {feedback_id} was already {current.status} by {current.reviewer or 'someone else'}; "
            "only pending feedback is reviewed"
        )

    def accept(self, ids: list[int], reviewer: str = "picsift") -> list[FeedbackItem]:
        """Accept pending feedback: its image enters the catalog labelled (split "feedback"). An item whose label no
        catalog image had before comes back with `new_class` set (the next training run gains that class).

        Each item in one transaction: claimed (see `_claim`), its image imported, its label written; a failure
        leaves the item pending and the catalog as it was. NotFoundError for an unknown id, FeedbackConflictError
        for one already reviewed (also when another reviewer accepts it at the same moment), ConfigError for an
        item without an image.
        """
        out = []
        for fid in ids:
            item = self.get(fid)
            if item.status == "pending" and (item.image_path is None or item.sha256 is None):
                raise ConfigError(
                    f"feedback {fid} carries no image, so it cannot become training data; reject it or "
                    "resend it with the image"
                )
            with self.ws.catalog.session() as s:
                self._claim(s, fid, "accepted", reviewer)
                new_class = not s.scalar(select(exists().where(Image.label == item.label)))
                image_id = self._import_image(s, item)
                write_label(s, image_id, item.label, origin="feedback", annotator=reviewer)
                s.execute(update(Feedback).where(Feedback.id == fid).values(image_id=image_id))
                f = s.get(Feedback, fid)
                assert f is not None  # claimed above
                s.refresh(f)
                out.append(dataclasses.replace(FeedbackItem.from_orm(f), new_class=new_class))
        return out

    def reject(self, ids: list[int], reviewer: str = "picsift") -> list[FeedbackItem]:
        """Mark pending feedback rejected by `reviewer`; returns the updated items. NotFoundError for an unknown id,
        FeedbackConflictError for one already reviewed (also when another reviewer reviews it at the same moment)."""
        out = []
        for fid in ids:
            with self.ws.catalog.session() as s:
                self._claim(s, fid, "rejected", reviewer)
                f = s.get(Feedback, fid)
                assert f is not None  # claimed above
                s.refresh(f)
                out.append(FeedbackItem.from_orm(f))
        return out

    def _import_image(self, s: Session, item: FeedbackItem) -> int:
        if item.image_path is None or item.sha256 is None:
            raise ConfigError(f"feedback {item.id} carries no image")
        path = self.image_file(item)
        if path is None:
            raise WorkspaceError(
                f"feedback {item.id}: its image {item.image_path} is missing from the workspace (or lies outside "
                "the workspace, which is never read)"
            )
        try:
            with s.begin_nested():
                return self._catalogued(s, item, path)
        except IntegrityError:  # another reviewer accepted the same bytes at this moment: use their row
            return self._catalogued(s, item, path)

    def _catalogued(self, s: Session, item: FeedbackItem, path: Path) -> int:
        """The id of the first catalog image with the item's bytes, added (split "feedback") when there is none."""
        assert item.sha256 is not None
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
                src = self.image_file(it)
                if src is not None and it.image_path:
                    dst = inside(out_dir, folders[it.label], Path(it.image_path).name)
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
