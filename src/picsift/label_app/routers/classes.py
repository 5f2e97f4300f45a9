"""The classes with their image counts: list, create, rename, merge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from picsift.label.edits import add_class, merge_classes, rename_class
from picsift.label.listing import class_counts
from picsift.label_app.deps import AnnotatorDep, WorkspaceDep
from picsift.label_app.schemas import ClassBody, MergeBody, RenameBody

router = APIRouter(prefix="/api/classes", tags=["classes"])


@router.get("")
def classes(ws: WorkspaceDep) -> list[dict[str, Any]]:
    """GET /api/classes: every class with its image counts."""
    return class_counts(ws.catalog)


@router.post("")
def create(body: ClassBody, ws: WorkspaceDep) -> list[dict[str, Any]]:
    """POST /api/classes: add a class; returns the classes with their counts (400 for an empty name)."""
    add_class(ws.catalog, body.name)
    return class_counts(ws.catalog)


@router.post("/rename")
def rename(body: RenameBody, ws: WorkspaceDep, who: AnnotatorDep) -> dict[str, Any]:
    """POST /api/classes/rename: relabel the images of one class; returns how many changed and the classes."""
    changed = rename_class(ws.catalog, body.old, body.new, annotator=who)
    return {"changed": changed, "classes": class_counts(ws.catalog)}


@router.post("/merge")
def merge(body: MergeBody, ws: WorkspaceDep, who: AnnotatorDep) -> dict[str, Any]:
    """POST /api/classes/merge: relabel the sources' images as the target; returns how many changed and the classes."""
    changed = merge_classes(ws.catalog, body.sources, body.target, annotator=who)
    return {"changed": changed, "classes": class_counts(ws.catalog)}
