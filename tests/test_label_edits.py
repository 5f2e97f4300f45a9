"""The labelling app's write rules without the web layer: conflicts, exclusions as whole actions, class edits,
feedback review one item at a time."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from picsift.errors import ConfigError, NotFoundError
from picsift.label.edits import (
    add_class,
    exclude_images,
    include_images,
    merge_classes,
    rename_class,
    resolve_proposals,
    review_feedback,
    set_labels,
    undo_exclusion,
)
from picsift.store import Workspace
from picsift.store.feedback_store import FeedbackStore
from support.postgres import CATALOGS

# Every test here on SQLite and on PostgreSQL (the conftest's `ws` fixture, once per catalog back end).
pytestmark = pytest.mark.parametrize("ws", CATALOGS, indirect=True)


def test_a_stale_version_is_a_conflict_and_the_rest_applies(ws) -> None:
    v4 = ws.catalog.image(4).label_version
    ws.catalog.set_label(4, "1", annotator="erin")  # someone else, after the page read version v4
    ws.catalog.propose_labels([(5, "2", 0.9)], origin="model")
    out = set_labels(ws.catalog, [4, 5], "  0 ", annotator="dana", expected_versions={4: v4})
    assert [a["image_id"] for a in out.applied] == [5] and out.applied[0]["label"] == "0"
    assert [c["image_id"] for c in out.conflicts] == [4]
    assert out.detail is not None and "someone else" in out.detail
    assert ws.catalog.image(4).label == "1" and ws.catalog.image(5).label == "0"
    assert ws.catalog.proposals([5]) == []  # a manual label withdraws the pending proposal
    assert set_labels(ws.catalog, [6], None, annotator="dana").detail is None
    with pytest.raises(ConfigError, match="cannot be empty"):
        set_labels(ws.catalog, [6], "  ", annotator="dana")
    with pytest.raises(NotFoundError, match="no image with id 999"):
        set_labels(ws.catalog, [999], "0", annotator="dana")


def test_accepting_a_proposal_never_overwrites_a_newer_label(ws) -> None:
    ws.catalog.propose_labels([(4, "0", 0.97), (5, "1", 0.9)], origin="model")
    props = {p["image_id"]: p["id"] for p in ws.catalog.proposals()}
    ws.catalog.set_label(5, "2", annotator="carol")
    out = resolve_proposals(ws.catalog, [props[4], props[5]], accept=True, annotator="dana")
    assert out["accepted"] == [props[4]] and out["conflicts"] == [props[5]]
    assert out["detail"].startswith("1 proposal(s) not applied")
    assert ws.catalog.image(5).label == "2"
    assert "detail" not in resolve_proposals(ws.catalog, [props[5]], accept=False, annotator="dana")


def test_including_part_of_an_exclusion_is_a_conflict_naming_the_action(ws) -> None:
    together = exclude_images(ws.catalog, [4, 5, 6], reason="", actor="dana")
    alone = exclude_images(ws.catalog, [7], reason=" blurry ", actor="dana")
    assert {e["reason"] for e in ws.catalog.exclusions() if e["image_id"] == 4} == {"excluded in the labelling app"}
    out = include_images(ws.catalog, [4, 7])
    assert out.undone == [alone] and out.included == [7]
    assert [(c["action_id"], c["image_ids"]) for c in out.conflicts] == [(together, [4])]
    assert out.detail is not None and f"undo action {together}" in out.detail
    assert ws.catalog.image(4).excluded and not ws.catalog.image(7).excluded
    assert include_images(ws.catalog, [4, 5, 6]).undone == [together]
    assert not any(ws.catalog.image(i).excluded for i in (4, 5, 6))


def test_exclusion_checks_every_id_before_writing_and_undoes_as_a_whole(ws) -> None:
    with pytest.raises(NotFoundError):
        exclude_images(ws.catalog, [4, 999], reason="", actor="dana")
    assert ws.catalog.actions() == []
    with pytest.raises(ConfigError, match="select at least one"):
        exclude_images(ws.catalog, [], reason="", actor="dana")
    action = exclude_images(ws.catalog, [8, 4], reason="", actor="dana")
    assert undo_exclusion(ws.catalog, action) == [4, 8]
    assert not ws.catalog.image(4).excluded


def test_class_rename_refuses_an_existing_name_and_merge_relabels(ws) -> None:
    add_class(ws.catalog, " seven ")
    assert "seven" in ws.catalog.classes()
    with pytest.raises(ConfigError, match="cannot be empty"):
        add_class(ws.catalog, " ")
    with pytest.raises(ConfigError, match="use merge"):
        rename_class(ws.catalog, "0", "1", annotator="dana")
    assert rename_class(ws.catalog, "0", "zero", annotator="dana") == 3
    assert merge_classes(ws.catalog, ["1", "2", "zero"], "zero", annotator="dana") == 6
    assert {r.label for r in ws.catalog.images(labeled=True)} == {"zero"}


def test_a_class_rename_keeps_a_label_another_annotator_wrote_while_it_ran(ws, monkeypatch) -> None:
    # Images 1-3 are labelled "0". Bob (another connection, as from another process) relabels image 1 as "2"
    # after the rename listed the class's images and before it wrote them: his acknowledged write must stand.
    bob = Workspace.open(ws.root)
    listed = ws.catalog.images
    acked: list[int] = []

    def images_then_bob_writes(**kw):
        rows = listed(**kw)
        if not acked:
            acked.append(
                bob.catalog.set_label(1, "2", annotator="bob", expected_version=bob.catalog.image(1).label_version)
            )
        return rows

    monkeypatch.setattr(ws.catalog, "images", images_then_bob_writes)
    assert rename_class(ws.catalog, "0", "zero", annotator="dana") == 2
    bob.close()
    assert ws.catalog.image(1).label == "2" and ws.catalog.image(1).label_version == acked[0]
    assert [(h["label"], h["annotator"]) for h in ws.catalog.label_history(1)] == [("0", "fixture"), ("2", "bob")]
    assert [ws.catalog.image(i).label for i in (2, 3)] == ["zero", "zero"]
    assert "0" not in ws.catalog.classes()


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), (value, 255 - value, 40)).save(buf, format="PNG")
    return buf.getvalue()


def test_feedback_review_reports_bad_items_without_blocking_the_rest(ws) -> None:
    store = FeedbackStore(ws)
    good = store.add("2", image=png(10), predicted_label="1")
    no_image = store.add("0")
    out = review_feedback(store, [no_image.id, 999, good.id], reviewer="dana", accept=True)
    assert [d["id"] for d in out.done] == [good.id]
    assert [e["id"] for e in out.errors] == [no_image.id, 999]
    assert out.detail is not None and "carries no image" in out.detail and "no feedback with id 999" in out.detail
    assert store.get(good.id).status == "accepted" and store.get(no_image.id).status == "pending"
