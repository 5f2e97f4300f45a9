"""Request bodies of the labelling API."""

from __future__ import annotations

from pydantic import BaseModel


class LabelBody(BaseModel):
    """POST /api/labels: give `image_ids` the `label` (null removes it); `expected_versions`:
    {image id: the version the client saw}."""

    image_ids: list[int]
    label: str | None
    expected_versions: dict[int, int] | None = None


class UndoBody(BaseModel):
    """POST /api/images/{id}/undo: undo the image's last label change; refused when the image is no
    longer at `expected_version`."""

    expected_version: int | None = None


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

    ids: list[int]


class ExcludeBody(BaseModel):
    """POST /api/exclusions: exclude `image_ids` from training, with an optional `reason`."""

    image_ids: list[int]
    reason: str = ""


class IncludeBody(BaseModel):
    """POST /api/exclusions/include: the excluded images to include again."""

    image_ids: list[int]


class ActionBody(BaseModel):
    """POST /api/exclusions/undo: the id of the exclusion action to undo."""

    action_id: int


class FeedbackIds(BaseModel):
    """POST /api/feedback/accept|reject: the feedback items to review; `confirm` also accepts those that
    create a class or relabel a labelled image."""

    ids: list[int]
    confirm: bool = False  # accept also what creates a class or relabels a labelled image


class FeedbackUndoBody(BaseModel):
    """POST /api/feedback/{id}/undo: refused when the image is no longer at `expected_version`."""

    expected_version: int | None = None


class TrainBody(BaseModel):
    """POST /api/jobs/train: the model to train (default: the app's) and its number of epochs (at least 1)."""

    model: str | None = None
    epochs: int = 5


class AutolabelBody(BaseModel):
    """POST /api/jobs/autolabel: the auto-labelling method and the confidence (0..1) a proposal needs."""

    method: str = "model"
    threshold: float = 0.9
