"""Request bodies and path parameters of the labelling API."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from picsift.store.catalog import MAX_ID

# An id of a catalog record (image, proposal, action, feedback): SQLite numbers them from 1 and stores at most
# a signed 64-bit integer, so anything else is refused with a message naming the field.
CatalogId = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a catalog id (1 and up)")]  # {image_id}, {feedback_id}
RecordVersion = Annotated[int, Field(ge=0, le=MAX_ID)]  # an image's label version, as GET /api/images/{id} shows


class LabelBody(BaseModel):
    """POST /api/labels: give `image_ids` the `label` (null removes it); `expected_versions`:
    {image id: the version the client saw}."""

    image_ids: list[CatalogId]
    label: str | None
    expected_versions: dict[CatalogId, RecordVersion] | None = None


class UndoBody(BaseModel):
    """POST /api/images/{id}/undo: undo the image's last label change; refused when the image is no
    longer at `expected_version`."""

    expected_version: RecordVersion | None = None


class ClassBody(BaseModel):
    """POST /api/classes: the name of the class to create."""

    name: str


class RenameBody(BaseModel):
    """POST /api/classes/rename: rename class `old` to `new`."""

    old: str
    new: str


class MergeBody(BaseModel):
    """POST /api/classes/merge: move the images of the `sources` classes into `target`."""

    sources: list[str]
    target: str


class ProposalIds(BaseModel):
    """POST /api/proposals/accept|reject: the ids of the label proposals to resolve."""

    ids: list[CatalogId]


class ExcludeBody(BaseModel):
    """POST /api/exclusions: exclude `image_ids` from training, with an optional `reason`."""

    image_ids: list[CatalogId]
    reason: str = ""


class IncludeBody(BaseModel):
    """POST /api/exclusions/include: the excluded images to include again."""

    image_ids: list[CatalogId]


class ActionBody(BaseModel):
    """POST /api/exclusions/undo: the id of the exclusion action to undo."""

    action_id: CatalogId


class FeedbackIds(BaseModel):
    """POST /api/feedback/accept|reject: the feedback items to review; `confirm` also accepts those that
    create a class or relabel a labelled image."""

    ids: list[CatalogId]
    confirm: bool = False  # accept also what creates a class or relabels a labelled image


class FeedbackUndoBody(BaseModel):
    """POST /api/feedback/{id}/undo: refused when the image is no longer at `expected_version`."""

    expected_version: RecordVersion | None = None


class TrainBody(BaseModel):
    """POST /api/jobs/train: the model to train (default: the app's) and its number of epochs (at least 1)."""

    model: str | None = None
    epochs: int = 5


class AutolabelBody(BaseModel):
    """POST /api/jobs/autolabel: the auto-labelling method and the confidence (0..1) a proposal needs."""

    method: Literal["model", "cluster"] = "model"  # picsift.label.autolabel.METHODS
    threshold: float = Field(0.9, ge=0.0, le=1.0)
