"""The `feedback` table: corrections sent to a serving model, awaiting review.

A separate module so the core schema stays small; importing it registers the table on the shared
`Base.metadata`, and `ensure_feedback_table` creates it in an existing catalog (create_all only adds
missing tables, so older workspaces upgrade in place).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from picsift.store.schema import Base, BoundedText, LabelText, utcnow

FEEDBACK_STATUSES = ("pending", "accepted", "rejected")


class Feedback(Base):
    """One piece of feedback on a served prediction: the label a user gave, the prediction it corrects, the
    saved image and its review status (pending, accepted, rejected)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str | None] = mapped_column(BoundedText(64), nullable=True, index=True)
    label: Mapped[str] = mapped_column(LabelText(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    predicted_label: Mapped[str | None] = mapped_column(BoundedText(200), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_version: Mapped[str | None] = mapped_column(BoundedText(200), nullable=True)
    sha256: Mapped[str | None] = mapped_column(BoundedText(64), nullable=True, index=True)
    image_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # relative to the workspace root
    status: Mapped[str] = mapped_column(BoundedText(12), default="pending", index=True)
    reviewer: Mapped[str | None] = mapped_column(BoundedText(100), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), nullable=True)  # set on accept
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def ensure_feedback_table(engine: Engine) -> None:
    """Create the feedback table in `engine`'s database if it does not exist yet."""
    Feedback.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
