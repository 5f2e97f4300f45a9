"""The labelling app's writes and their conflict rules: labels, classes, exclusions, proposals, feedback review.

Every write goes through the catalog with the annotator's name. A write that loses to a concurrent change
is reported per item under "conflicts" (never applied silently); the rest of a bulk request still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picsift.deploy.feedback import FeedbackStore
from picsift.errors import ConfigError, PicsiftError
from picsift.labels_text import normalize_label, normalize_optional_label
from picsift.store import Catalog, LabelConflictError

DEFAULT_EXCLUSION_REASON = "excluded in the labelling app"


def _joined(messages: list[str]) -> str | None:
    return "; ".join(messages) if messages else None


@dataclass(frozen=True)
class LabelChanges:
    """applied: [{"image_id", "label", "version", "previous"}]; conflicts: [{"image_id", "message"}]."""

    applied: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]

    @property
    def detail(self) -> str | None:
        return _joined([c["message"] for c in self.conflicts])


def set_labels(
    catalog: Catalog,
    image_ids: list[int],
    label: str | None,
    *,
    annotator: str,
    expected_versions: dict[int, int] | None = None,
) -> LabelChanges:
    """Label images by hand (None removes the label), withdrawing their pending proposals.

    With `expected_versions`, an image changed since the caller read that version is a conflict and keeps
    its label. The label is normalised (NFC, stripped); an empty one is a LabelError; an unknown id a NotFoundError.
    """
    cleaned = normalize_optional_label(label)
    applied: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    for image_id in image_ids:
        expected = (expected_versions or {}).get(image_id)
        previous = catalog.image(image_id)
        try:
            version = catalog.set_label(
                image_id, cleaned, origin="manual", annotator=annotator, expected_version=expected
            )
        except LabelConflictError as e:
            conflicts.append({"image_id": image_id, "message": str(e)})
            continue
        catalog.close_proposals([image_id])
        applied.append({"image_id": image_id, "label": cleaned, "version": version, "previous": previous.label})
    return LabelChanges(applied, conflicts)


def add_class(catalog: Catalog, name: str) -> None:
    """Declare a class (NFC, stripped; LabelError when empty). Adding an existing class changes nothing."""
    catalog.add_class(normalize_label(name))


def rename_class(catalog: Catalog, old: str, new: str, *, annotator: str) -> int:
    """Rename class `old`; returns the images relabelled. Renaming onto another existing class is a
    ConfigError: combining two classes is a merge, asked for explicitly."""
    old, new = normalize_label(old), normalize_label(new)
    if new in catalog.classes() and new != old:
        raise ConfigError(f"class {new!r} already exists: use merge to combine the two classes")
    return catalog.relabel_class(old, new, annotator=annotator)


def merge_classes(catalog: Catalog, sources: list[str], target: str, *, annotator: str) -> int:
    """Relabel every image of each source class as `target`; returns the images relabelled."""
    changed = 0
    target = normalize_label(target)
    for source in map(normalize_label, sources):
        if source != target:
            changed += catalog.relabel_class(source, target, annotator=annotator)
    return changed


def resolve_proposals(catalog: Catalog, proposal_ids: list[int], *, accept: bool, annotator: str) -> dict[str, Any]:
    """Accept or reject proposals: {"accepted", "rejected", "conflicts", "missing"} (proposal ids).

    A proposal whose image was labelled differently meanwhile is not applied: it is listed under
    "conflicts", and the result carries a "detail" saying so.
    """
    out: dict[str, Any] = dict(catalog.resolve_proposals(proposal_ids, accept=accept, annotator=annotator))
    if out["conflicts"]:
        out["detail"] = (
            f"{len(out['conflicts'])} proposal(s) not applied: the image was labelled differently "
            "in the meantime; reload to review"
        )
    return out


def exclude_images(catalog: Catalog, image_ids: list[int], *, reason: str, actor: str) -> int:
    """Exclude images from training as one undoable catalog action; returns its id.

    ConfigError for no images; NotFoundError for an unknown id, before anything is written.
    The reason is stripped and cut to 500 characters (a default when empty).
    """
    if not image_ids:
        raise ConfigError("no images to exclude: select at least one")
    for image_id in image_ids:
        catalog.image(image_id)
    why = reason.strip()[:500] or DEFAULT_EXCLUSION_REASON
    return catalog.exclude(dict.fromkeys(image_ids, why), kind="manual", actor=actor, reason=why)


def undo_exclusion(catalog: Catalog, action_id: int) -> list[int]:
    """Undo an exclusion action; returns the images it had excluded (sorted)."""
    affected = sorted({e["image_id"] for e in catalog.exclusions() if e["action_id"] == action_id})
    catalog.undo(action_id)
    return affected


@dataclass(frozen=True)
class Inclusion:
    """undone: action ids; included: image ids no longer excluded; conflicts: [{"action_id", "image_ids", "message"}]."""

    undone: list[int]
    included: list[int]
    conflicts: list[dict[str, Any]]

    @property
    def detail(self) -> str | None:
        return _joined([c["message"] for c in self.conflicts])


def include_images(catalog: Catalog, image_ids: list[int]) -> Inclusion:
    """Include images again by undoing the actions that excluded them.

    An action is undone only if every image it excluded is among `image_ids`: including one image must not
    silently bring back others excluded with it (e.g. by a curation run); such actions are reported as
    conflicts naming the action to undo instead.
    """
    wanted = set(image_ids)
    by_action: dict[int, set[int]] = {}
    for e in catalog.exclusions():
        by_action.setdefault(int(e["action_id"]), set()).add(int(e["image_id"]))
    undone: list[int] = []
    conflicts: list[dict[str, Any]] = []
    for action_id, images in sorted(by_action.items()):
        hit = images & wanted
        if not hit:
            continue
        if images <= wanted:
            catalog.undo(action_id)
            undone.append(action_id)
        else:
            conflicts.append(
                {
                    "action_id": action_id,
                    "image_ids": sorted(hit),
                    "message": f"images {sorted(hit)} were excluded together with {len(images - wanted)} "
                    f"other image(s) by action {action_id}; select them all or undo action {action_id}",
                }
            )
    still = {x.id for x in catalog.images(ids=sorted(wanted), readable=None, include_excluded=True) if x.excluded}
    return Inclusion(undone, sorted(wanted - still), conflicts)


@dataclass(frozen=True)
class FeedbackReview:
    """done: the reviewed items (FeedbackItem.to_dict()); errors: [{"id", "message"}] for those left as they were."""

    done: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    @property
    def detail(self) -> str | None:
        return _joined([e["message"] for e in self.errors])


def review_feedback(store: FeedbackStore, ids: list[int], *, reviewer: str, accept: bool) -> FeedbackReview:
    """Accept (the image enters the catalog labelled, split "feedback") or reject feedback items.

    One by one: an item that cannot be reviewed (unknown, already reviewed, no image) is reported under
    errors and does not block the rest of a bulk review.
    """
    done: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for fid in ids:
        try:
            out = store.accept([fid], reviewer=reviewer) if accept else store.reject([fid], reviewer=reviewer)
        except PicsiftError as e:
            errors.append({"id": fid, "message": str(e)})
            continue
        done.append(out[0].to_dict())
    return FeedbackReview(done, errors)
