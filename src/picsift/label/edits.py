"""The labelling app's writes and their conflict rules: labels, classes, exclusions, proposals, feedback review.

Every write goes through the catalog with the annotator's name. A write that loses to a concurrent change
is reported per item under "conflicts" (never applied silently); the rest of a bulk request still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from picsift.errors import ConfigError, PicsiftError
from picsift.labels_text import normalize_label, normalize_optional_label
from picsift.store import Catalog, LabelChange, LabelConflictError, Workspace
from picsift.store.catalog import write_undo_label
from picsift.store.feedback import Feedback
from picsift.store.feedback_store import FeedbackConflictError, FeedbackItem, FeedbackStore
from picsift.store.schema import ClassName, Exclusion, Image, LabelEvent

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
        """The conflicts' messages joined into one line, or None when there are none."""
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
        try:  # the label and the withdrawal of the image's proposals: one transaction
            (version,) = catalog.set_labels(
                [LabelChange(image_id, cleaned, "manual", annotator, expected)], close_proposals=True
            )
        except LabelConflictError as e:
            conflicts.append({"image_id": image_id, "message": str(e)})
            continue
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
        """The conflicts' messages joined into one line, or None when there are none."""
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


def feedback_plans(ws: Workspace, items: list[FeedbackItem]) -> dict[int, dict[str, Any]]:
    """What accepting each feedback item would do, for the reviewer to see first: {feedback id: plan}.

    A plan: "new_class" (the suggested label is no class yet), "agrees_with_model" (the suggestion equals the
    served model's label; None when the model's label is unknown), "catalog_image" ({"id", "split", "label"}
    of the catalogued image with the same bytes, which accepting relabels; None: accepting imports the image),
    "confirm" (why accepting needs the reviewer's confirmation: creating a class, or relabelling an image that
    already has another label; None when it needs none).
    """
    classes = set(ws.catalog.classes())
    shas = {it.sha256 for it in items if it.sha256}
    known: dict[str, dict[str, Any]] = {}
    if shas:
        with ws.catalog.session() as s:
            q = select(Image).where(Image.sha256.in_(shas), Image.duplicate_of.is_(None)).order_by(Image.id.desc())
            # The lowest id last, so it wins: the image accepting relabels (FeedbackStore.accept).
            known = {im.sha256: {"id": im.id, "split": im.split, "label": im.label} for im in s.scalars(q)}
    plans = {}
    for it in items:
        image = known.get(it.sha256 or "")
        reasons = []
        if it.label not in classes:
            reasons.append(f"creates the new class {it.label!r}")
        if image is not None and image["label"] is not None and image["label"] != it.label:
            reasons.append(
                f"relabels image {image['id']} (split {image['split'] or 'none'}, labelled {image['label']!r}) "
                f"as {it.label!r}"
            )
        plans[it.id] = {
            "new_class": it.label not in classes,
            "agrees_with_model": None if it.predicted_label is None else it.predicted_label == it.label,
            "catalog_image": image,
            "confirm": f"accepting feedback {it.id} " + " and ".join(reasons) if reasons else None,
        }
    return plans


@dataclass(frozen=True)
class FeedbackReview:
    """done: the reviewed items (FeedbackItem.to_dict(), accepted ones with "version": the image's label version
    for undo); errors: [{"id", "message"}] for those left as they were ("needs_confirmation": True for those
    refused only because the reviewer did not confirm)."""

    done: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    @property
    def detail(self) -> str | None:
        """The errors' messages joined into one line, or None when there are none."""
        return _joined([e["message"] for e in self.errors])


def review_feedback(
    store: FeedbackStore, ids: list[int], *, reviewer: str, accept: bool, confirmed: bool = False
) -> FeedbackReview:
    """Accept (the image enters the catalog labelled, split "feedback") or reject feedback items.

    One by one: an item that cannot be reviewed (unknown, already reviewed, no image) is reported under
    errors and does not block the rest of a bulk review. Without `confirmed`, accepting an item that would
    create a class or relabel an image already labelled otherwise is refused (see `feedback_plans`).
    """
    done: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for fid in ids:
        try:
            if accept:
                plan = feedback_plans(store.ws, [store.get(fid)])[fid]
                if plan["confirm"] and not confirmed:
                    errors.append(
                        {"id": fid, "message": f"{plan['confirm']}: confirm to accept", "needs_confirmation": True}
                    )
                    continue
                item = store.accept([fid], reviewer=reviewer)[0]
                assert item.image_id is not None  # set by accept
                done.append({**item.to_dict(), "version": store.ws.catalog.image(item.image_id).label_version})
            else:
                done.append(store.reject([fid], reviewer=reviewer)[0].to_dict())
        except PicsiftError as e:
            errors.append({"id": fid, "message": str(e)})
    return FeedbackReview(done, errors)


def undo_feedback_accept(
    store: FeedbackStore, feedback_id: int, *, annotator: str, expected_version: int | None = None
) -> dict[str, Any]:
    """Undo accepting a feedback item, like any label change: the image gets back the label it had before
    (a new "undo" change in its history; LabelConflictError when someone changed it after `expected_version`),
    and the feedback is pending again, all in one transaction (FeedbackConflictError for the loser of two undos
    at once). An image the accept imported, with no other history, leaves the catalog
    again; a class the accept created, now unused, is dropped.

    All in one transaction: a kill leaves the accept in place, whole.

    Returns {"feedback": the item (FeedbackItem.to_dict()), "image_id", "label" (the image's label now, None
    when removed), "version", "removed_image", "removed_class"}. ConfigError for feedback not accepted.
    """
    item = store.get(feedback_id)
    if item.status != "accepted" or item.image_id is None:
        raise ConfigError(f"feedback {feedback_id} is {item.status}, not accepted: nothing to undo")
    image_id = item.image_id
    catalog = store.ws.catalog
    with catalog.session() as s:  # the label, the feedback, the image row and the class: one transaction
        accepted_at = s.scalar(
            select(LabelEvent.created_at)
            .where(LabelEvent.image_id == image_id, LabelEvent.origin == "feedback", LabelEvent.label == item.label)
            .order_by(LabelEvent.id.desc())
        )
        # The claim first (accepted -> pending, conditional): of two undos at once one does it, the other is told.
        reopened = s.execute(
            update(Feedback)
            .where(Feedback.id == feedback_id, Feedback.status == "accepted", Feedback.image_id == image_id)
            .values(status="pending", reviewer=None, reviewed_at=None, image_id=None)
        )
        if reopened.rowcount != 1:  # type: ignore[attr-defined]
            raise FeedbackConflictError(
                f"feedback {feedback_id} is no longer accepted (someone else undid or changed it): reload"
            )
        version = write_undo_label(s, image_id, annotator=annotator, expected_version=expected_version)
        row = s.get(Image, image_id)
        assert row is not None  # its label was just written
        imported_only = (
            row.source_kind == "feedback"
            and row.label is None
            and not row.excluded
            and all(
                o in ("feedback", "undo")
                for o in s.scalars(select(LabelEvent.origin).where(LabelEvent.image_id == image_id))
            )
        )
        label_now = row.label
        removed_image = imported_only and not _referenced(s, image_id)
        if removed_image:
            s.execute(delete(LabelEvent).where(LabelEvent.image_id == image_id))
            s.execute(delete(Image).where(Image.id == image_id))
        removed_class = False
        cls = s.get(ClassName, item.label)
        # A class that accept created (set_label declares a new class as it writes the label), now unused.
        if (
            cls is not None
            and accepted_at is not None
            and cls.created_at >= accepted_at - timedelta(seconds=1)
            and not _class_in_use(s, item.label)
        ):
            s.delete(cls)
            removed_class = True
        s.flush()
        f = s.get(Feedback, feedback_id)
        assert f is not None  # reopened above
        s.refresh(f)
        out_item = FeedbackItem.from_orm(f).to_dict()
    return {
        "feedback": out_item,
        "image_id": image_id,
        "label": None if removed_image else label_now,
        "version": version,
        "removed_image": removed_image,
        "removed_class": removed_class,
    }


def _referenced(s: Session, image_id: int) -> bool:
    """Whether anything besides its label events names the image: feedback, exclusions, duplicates."""
    return bool(
        s.scalar(select(func.count(Feedback.id)).where(Feedback.image_id == image_id))
        or s.scalar(select(func.count(Exclusion.id)).where(Exclusion.image_id == image_id))
        or s.scalar(select(func.count(Image.id)).where(Image.duplicate_of == image_id))
    )


def _class_in_use(s: Session, label: str) -> bool:
    """Whether an image carries the label or a pending proposal suggests it."""
    return bool(
        s.scalar(select(func.count(Image.id)).where(Image.label == label))
        or s.scalar(select(func.count(LabelEvent.id)).where(LabelEvent.label == label, LabelEvent.status == "proposed"))
    )
