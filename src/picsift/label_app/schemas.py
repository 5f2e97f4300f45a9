"""Request bodies of the labelling API."""

from __future__ import annotations

from pydantic import BaseModel


class LabelBody(BaseModel):
    image_ids: list[int]
    label: str | None
    expected_versions: dict[int, int] | None = None


class UndoBody(BaseModel):
    expected_version: int | None = None


class ClassBody(BaseModel):
    name: str


class RenameBody(BaseModel):
    old: str
    new: str


class MergeBody(BaseModel):
    sources: list[str]
    target: str


class ProposalIds(BaseModel):
    ids: list[int]


class ExcludeBody(BaseModel):
    image_ids: list[int]
    reason: str = ""


class IncludeBody(BaseModel):
    image_ids: list[int]


class ActionBody(BaseModel):
    action_id: int


class FeedbackIds(BaseModel):
    ids: list[int]
    confirm: bool = False  # accept also what creates a class or relabels a labelled image


class FeedbackUndoBody(BaseModel):
    expected_version: int | None = None


class TrainBody(BaseModel):
    model: str | None = None
    epochs: int = 5


class AutolabelBody(BaseModel):
    method: str = "model"
    threshold: float = 0.9
