"""End to end in a real browser: Debian's chromium driven by Playwright labels images with the keyboard.

The real app runs under uvicorn on a free loopback port in a thread; the test then checks the catalog.
Set PICSIFT_SCREENSHOTS_DIR=docs/img to also save the screenshots in docs/label.md, PICSIFT_CHROMIUM to use another
chromium executable. Without chromium or playwright every test here skips (fails under PICSIFT_REQUIRE_ALL=1)
before it starts anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from picsift.label_app import LabelSettings, create_app
from picsift.store import Workspace
from support.browser import free_port, settled, shot, wait_for
from support.label import make_workspace

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _browser_available(chromium_path: Path) -> None:
    """Autouse fixtures set up first: the check runs before a test's other fixtures build workspaces or servers."""


@pytest.fixture
def server(chromium_path: Path, tmp_path: Path) -> Iterator[tuple[str, Workspace]]:
    import uvicorn

    ws = make_workspace(tmp_path, per_class=8, labelled_per_class=2)
    (ws.root / "findings.json").write_text(
        '[{"kind": "blurry", "image_ids": [1], "score": 0.31, "explanation": "low Laplacian variance"}]'
    )
    port = free_port()
    app = create_app(LabelSettings(workspace=ws.root, token="tok3n", annotator="server-default"))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", ws
    srv.should_exit = True
    thread.join(timeout=10)
    ws.close()


def test_keyboard_labelling_undo_and_bulk_in_chromium(server, page) -> None:
    url, ws = server
    page.goto(url + "?token=wrong")
    assert "wrong token" in page.content()  # the API refuses; the page itself is not even served
    page.goto(url + "?token=tok3n")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("[data-testid=annotator]", "dana")
    page.press("[data-testid=annotator]", "Enter")
    page.select_option("[data-testid=view]", "unlabeled")
    page.wait_for_function("document.querySelectorAll('.card').length === 18")
    first = int(page.get_attribute(".card >> nth=0", "data-id"))
    second = int(page.get_attribute(".card >> nth=1", "data-id"))
    page.click("[data-testid=grid]", position={"x": 2, "y": 2})  # focus the page, not an input
    shot(page, "label-grid.png")

    # "1" labels the image under the cursor with the first class ("0") and moves on.
    page.keyboard.press("1")
    wait_for(lambda: ws.catalog.image(first).label == "0", "first label")
    last = ws.catalog.label_history(first)[-1]
    assert (last["annotator"], last["origin"]) == ("dana", "manual")

    # Enter opens the single-image view on the next image; "3" labels it "2"; "u" undoes that.
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=viewer]:not([hidden])")
    page.wait_for_selector("[data-testid=viewer-meta] >> text=16 × 16 px")
    shot(page, "label-viewer.png")
    page.keyboard.press("3")
    wait_for(lambda: ws.catalog.image(second).label == "2", "label from the viewer")
    settled(page)
    page.keyboard.press("ArrowLeft")  # back to it; "2" relabels it "1"; each "u" steps one change further back
    settled(page)
    page.keyboard.press("2")
    wait_for(lambda: ws.catalog.image(second).label == "1", "relabel from the viewer")
    settled(page)
    page.keyboard.press("u")
    wait_for(lambda: ws.catalog.image(second).label == "2", "undo")
    settled(page)
    page.keyboard.press("u")
    wait_for(lambda: ws.catalog.image(second).label is None, "second undo")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=viewer]", state="hidden")

    # Bulk: select two cards with ctrl+click, press "2".
    third = int(page.get_attribute(".card >> nth=2", "data-id"))
    fourth = int(page.get_attribute(".card >> nth=3", "data-id"))
    page.click(f"[data-testid=card-{third}]", modifiers=["Control"])
    page.click(f"[data-testid=card-{fourth}]", modifiers=["Control"])
    page.wait_for_selector("[data-testid=selection] >> text=2 selected")
    page.keyboard.press("2")
    wait_for(lambda: ws.catalog.image(third).label == ws.catalog.image(fourth).label == "1", "bulk label")

    # Another user changes an image behind the page's back: the page's write loses, visibly.
    fifth = int(page.get_attribute(".card >> nth=4", "data-id"))
    ws.catalog.set_label(fifth, "0", annotator="erin")
    page.keyboard.press("Escape")
    page.click(f"[data-testid=card-{fifth}]")
    page.keyboard.press("3")
    page.wait_for_selector("[data-testid=toast] >> text=conflict")
    assert ws.catalog.image(fifth).label == "0"


def test_findings_proposals_and_clusters_in_chromium(server, page) -> None:
    url, ws = server
    from picsift.label.autolabel import autolabel

    unl = [r.id for r in ws.catalog.images(labeled=False)]
    ws.catalog.propose_labels([(unl[0], "0", 0.96), (unl[1], "1", 0.93)], origin="model")
    autolabel(ws, "cluster", n_clusters=3, extractor="pixels")
    page.goto(url + "?token=tok3n")
    page.wait_for_selector("body[data-ready='1']")
    page.select_option("[data-testid=view]", "proposed")
    page.wait_for_function("document.querySelectorAll('.card').length === 2")
    shot(page, "label-proposals.png")
    page.click("[data-testid=btn-select-all]")
    page.click("[data-testid=btn-accept]")
    wait_for(lambda: ws.catalog.image(unl[0]).label == "0" and ws.catalog.image(unl[1]).label == "1", "accept")

    # The clusters view: select a whole cluster, drop one odd image, label the rest at once.
    page.click("[data-testid=btn-clusters]")
    page.wait_for_selector("[data-testid=cluster-0]")
    ids = [  # the cluster's unlabelled images (the labelled ones follow them, and the button leaves them out)
        int(x)
        for x in page.eval_on_selector_all(
            "[data-testid=cluster-0] .card", "els => els.filter(e => e.querySelector('.none')).map(e => e.dataset.id)"
        )
    ]
    page.click("[data-testid=cluster-0] .sel-cluster")
    page.click(f"[data-testid=card-{ids[-1]}]")  # deselect the odd one
    shot(page, "label-clusters.png")
    page.keyboard.press("3")
    wait_for(lambda: all(ws.catalog.image(i).label == "2" for i in ids[:-1]), "cluster label")
    assert ws.catalog.image(ids[-1]).label is None

    # Metadata and curation findings of image 1 in the single-image view.
    page.select_option("[data-testid=view]", "all")
    page.wait_for_selector("[data-testid=card-1]")
    page.dblclick("[data-testid=card-1]")
    page.wait_for_selector("[data-testid=viewer-findings] >> text=blurry")
    assert "low Laplacian variance" in page.inner_text("[data-testid=viewer-findings]")


def test_photo_workflow_train_queue_proposals_in_chromium(tmp_path: Path, datasets: Path, page) -> None:
    """CIFAR-10 photos: train from the app, rank the next batch, review model proposals (the docs/label.md shots)."""
    import hashlib
    import shutil

    import uvicorn

    from picsift.label.autolabel import autolabel
    from picsift.store.schema import Image

    classes = ["airplane", "automobile", "frog"]
    ws = Workspace.open(tmp_path / "ws", create=True)
    rows = []
    for c in classes:
        for f in sorted((datasets / "cifar10" / "train" / c).glob("*.jpg"))[:24]:
            dst = tmp_path / "photos" / c / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
            data = dst.read_bytes()
            rows.append(
                Image(
                    sha256=hashlib.sha256(data).hexdigest(),
                    path=str(dst),
                    source=str(tmp_path / "photos"),
                    byte_size=len(data),
                    width=32,
                    height=32,
                    format="JPEG",
                    mode="RGB",
                    split="train",
                )
            )
    ws.catalog.add_images(rows)
    for c in classes:
        for r in [r for r in ws.catalog.images() if Path(r.path).parent.name == c][:10]:
            ws.catalog.set_label(r.id, c, origin="import", annotator="fixture")
    port = free_port()
    app = create_app(LabelSettings(workspace=ws.root, annotator="dana"))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: srv.started, "server start")
        page.on("dialog", lambda d: d.accept("10"))  # the Train button asks for the number of epochs
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready='1']")
        page.click("[data-testid=btn-train]")
        page.wait_for_selector("[data-testid=job-status] >> text=train: done", timeout=180000)
        assert len(list((ws.root / "runs").iterdir())) == 1
        page.select_option("[data-testid=view]", "unlabeled")
        page.select_option("[data-testid=sort]", "uncertainty")
        page.wait_for_selector(".card .pred")
        shot(page, "label-grid.png")
        page.click("[data-testid=btn-queue]")
        page.wait_for_selector("[data-testid=title] >> text=most informative")
        assert page.locator(".card").count() == 24
        autolabel(ws, "model", threshold=0.0)
        page.select_option("[data-testid=sort]", "id")
        page.select_option("[data-testid=view]", "proposed")
        page.wait_for_selector(".card .prop")
        shot(page, "label-proposals.png")
        first = int(page.get_attribute(".card >> nth=0", "data-id"))
        proposed = ws.catalog.proposals([first])[0]["label"]
        page.dblclick(f"[data-testid=card-{first}]")
        page.wait_for_selector("[data-testid=viewer-meta] >> text=32 × 32 px")
        shot(page, "label-viewer.png")
        page.keyboard.press("a")
        wait_for(lambda: ws.catalog.image(first).label == proposed, "accepted proposal")
        autolabel(ws, "cluster", n_clusters=4, extractor="pixels")
        page.keyboard.press("Escape")
        page.click("[data-testid=btn-clusters]")
        page.wait_for_selector("[data-testid=cluster-0]")
        page.click("[data-testid=cluster-0] .sel-cluster")
        shot(page, "label-clusters.png")
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        ws.close()


def test_feedback_review_and_exclusion_in_chromium(server, page) -> None:
    """Review a served model's feedback with the keyboard and a click: a suggestion that creates a class and
    relabels a validation image asks first in the page, and is undone with u; Enter opens a feedback image; Esc
    and the Grid button leave Feedback, Next batch and Clusters; the viewer's panel follows exclude and undo."""
    import io

    from PIL import Image as PILImage

    from picsift.cluster import run as cluster_run
    from picsift.store.feedback_store import FeedbackStore

    url, ws = server

    def png(value: int) -> bytes:
        buf = io.BytesIO()
        PILImage.new("RGB", (12, 12), (value, 255 - value, 40)).save(buf, format="PNG")
        return buf.getvalue()

    store = FeedbackStore(ws)
    ws.catalog.set_splits({2: "val"})
    first = store.add("2", image=png(10), predicted_label="1", confidence=0.7, comment="clearly a two")
    second = store.add("0", image=png(200), predicted_label="0", comment="spam")
    wasps = store.add("wasps", image=Path(ws.catalog.image(2).path).read_bytes(), predicted_label="0", confidence=0.8)
    page.goto(url + "?token=tok3n")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("[data-testid=annotator]", "dana")
    page.press("[data-testid=annotator]", "Enter")
    page.wait_for_selector("[data-testid=btn-feedback] >> text=Feedback (3)")
    page.click("[data-testid=btn-feedback]")
    page.wait_for_selector(f"[data-testid=fb-{first.id}] >> text=clearly a two")
    assert "suggested: 2" in page.inner_text(f"[data-testid=fb-{first.id}]")
    card = page.inner_text(f"[data-testid=fb-{wasps.id}]")
    assert "new class" in card and "model said 0" in card and "image 2 · val · 0" in card
    shot(page, "label-feedback.png")

    # The cursor starts on the first item: Enter shows its image large, Esc closes it, "a" accepts it.
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=viewer-label] >> text=suggested: 2")
    assert page.get_attribute("#viewer-img", "src").endswith(f"api/feedback/{first.id}/image?full=1")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=viewer]", state="hidden")
    page.keyboard.press("a")
    wait_for(lambda: store.get(first.id).status == "accepted", "feedback accepted")
    image_id = store.get(first.id).image_id
    assert image_id is not None and ws.catalog.image(image_id).label == "2"
    assert ws.catalog.image(image_id).split == "feedback"
    last = ws.catalog.label_history(image_id)[-1]
    assert (last["origin"], last["annotator"]) == ("feedback", "dana")
    page.wait_for_selector(f"[data-testid=fb-{first.id}]", state="detached")
    page.click(f"[data-testid=fb-reject-{second.id}]")
    wait_for(lambda: store.get(second.id).status == "rejected", "feedback rejected")
    assert store.get(second.id).image_id is None

    # "wasps" would create a class and relabel validation image 2: the page asks; Esc cancels, Enter accepts.
    page.wait_for_selector(f"[data-testid=fb-{second.id}]", state="detached")
    page.keyboard.press("a")
    page.wait_for_selector("[data-testid=dialog]:visible")
    text = page.inner_text("[data-testid=dialog-text]")
    assert "creates the new class 'wasps'" in text and "relabels image 2 (split val, labelled '0')" in text
    shot(page, "label-feedback-confirm.png")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=dialog]", state="hidden")
    settled(page)
    assert store.get(wasps.id).status == "pending" and ws.catalog.image(2).label == "0"
    page.keyboard.press("a")
    page.click("[data-testid=dialog-ok]")
    wait_for(lambda: ws.catalog.image(2).label == "wasps", "confirmed accept")
    settled(page)
    page.keyboard.press("u")  # undone like any label change: label, pending feedback, no class "wasps"
    wait_for(lambda: ws.catalog.image(2).label == "0", "accept undone")
    assert store.get(wasps.id).status == "pending" and "wasps" not in ws.catalog.classes()
    page.wait_for_selector(f"[data-testid=fb-{wasps.id}]")

    # Esc leaves Feedback; Next batch and Clusters too (Clusters reads what `picsift cluster` wrote).
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=title] >> text=25 images")
    page.click("[data-testid=btn-queue]")
    page.keyboard.press("Escape")  # even while the batch is being chosen
    page.wait_for_selector("[data-testid=title] >> text=25 images")
    page.click("[data-testid=btn-queue]")
    page.wait_for_selector("[data-testid=title] >> text=diverse unlabelled images")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=title] >> text=25 images")
    cluster_run(ws, features="color-hist", k=3)
    page.click("[data-testid=btn-clusters]")
    page.wait_for_selector("[data-testid=title] >> text=3 clusters from `picsift cluster`")
    assert page.locator(".cluster .card").count() == 25
    shot(page, "label-clusters-command.png")
    page.click("[data-testid=btn-grid]")
    page.wait_for_selector("[data-testid=title] >> text=25 images")

    # Exclude the image under the cursor with "x", then undo: one reversible catalog action.
    page.wait_for_selector("[data-testid=card-3]")
    page.click("[data-testid=card-3]")
    page.keyboard.press("x")
    wait_for(lambda: ws.catalog.image(3).excluded, "excluded")
    settled(page)  # the app records the undo entry when the server answers, a moment after the catalog changes
    assert [(a["kind"], a["actor"]) for a in ws.catalog.actions()] == [("manual", "dana")]
    page.keyboard.press("u")
    wait_for(lambda: not ws.catalog.image(3).excluded, "exclusion undone")
    assert ws.catalog.actions()[0]["undone_at"] is not None

    # The same in the viewer: its panel says "excluded yes" after x, and no longer after u.
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=viewer-meta] >> text=16 × 16 px")
    page.keyboard.press("x")
    page.wait_for_selector("[data-testid=viewer-meta] >> text=excluded")
    settled(page)
    page.keyboard.press("u")
    wait_for(lambda: not ws.catalog.image(3).excluded, "exclusion undone in the viewer")
    page.wait_for_selector("[data-testid=viewer-meta] >> text=excluded", state="detached")


def test_findings_runs_links_paging_and_focus_in_chromium(server, page) -> None:
    """The findings view and badges, the run picker (the user's run by default, not a later compare- candidate),
    the loading indicator, links to one image, paging in the viewer, and controls that hand the keyboard back."""
    import json
    import shutil

    from picsift.config import TrainConfig
    from picsift.label.scoring import PredictionCache
    from picsift.train import run as train_run

    url, ws = server
    mine = train_run(TrainConfig(workspace=ws.root, model="fastcnn", epochs=1, run_name="mine").validate()).run_id
    candidate = "29990101-000000-compare-fastcnn"  # trained later by `picsift compare`
    shutil.copytree(ws.runs_dir / mine, ws.runs_dir / candidate)
    labelled = ws.catalog.images(labeled=True)
    probs, classes, _ = PredictionCache().get(ws, labelled, mine)
    odd = labelled[1].id  # not image 1, which has a finding of its own
    wrong = next(c for c in classes if c != classes[int(probs[odd].argmax())])
    ws.catalog.set_label(odd, wrong)  # labelled otherwise than the model says
    findings = [
        {"kind": "blurry", "image_ids": [1], "score": 0.31, "explanation": "low Laplacian variance"},
        {"kind": "blurry", "image_ids": [5], "score": 0.8, "explanation": "very soft"},
        {"kind": "label_issue", "image_ids": [odd], "score": 0.6, "explanation": "looks otherwise",
         "details": {"given_label": wrong, "suggested_label": classes[int(probs[odd].argmax())]}},
    ]  # fmt: skip
    (ws.root / "findings.json").write_text(json.dumps({"findings": findings}))

    # First load: a loading indicator while the page's predictions are computed (held back here).
    held: list = []
    holding = [True]
    page.route("**/api/images?*", lambda route: held.append(route) if holding[0] else route.continue_())
    page.goto(url + "?token=tok3n")
    page.wait_for_selector("[data-testid=loading] >> text=predictions of " + mine)
    shot(page, "label-loading.png")
    holding[0] = False
    for route in held:
        route.continue_()
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector(".card .pred")

    # The run: the one the user trained, named in full; the candidate is there to pick.
    assert page.input_value("[data-testid=run]") == mine
    options = page.eval_on_selector_all("[data-testid=run] option", "os => os.map(o => o.textContent)")
    assert any(o.startswith(candidate) and "candidate" in o for o in options)
    assert page.evaluate("() => { const h = document.querySelector('header'); return h.scrollWidth <= h.clientWidth }")
    page.focus("[data-testid=run]")
    page.select_option("[data-testid=run]", candidate)
    settled(page)
    assert page.evaluate("document.activeElement.id") == "grid"
    page.select_option("[data-testid=run]", mine)
    settled(page)
    shot(page, "label-run.png")

    # Sort chosen "with the mouse": the keyboard goes back to the grid, arrows move, number keys label.
    page.focus("[data-testid=sort]")
    page.select_option("[data-testid=sort]", "uncertainty")
    settled(page)
    assert page.evaluate("document.activeElement.id") == "grid"
    page.keyboard.press("ArrowRight")
    assert page.input_value("[data-testid=sort]") == "uncertainty"
    target = int(page.get_attribute(".card.cursor", "data-id"))
    assert target == int(page.get_attribute(".card >> nth=1", "data-id"))
    page.keyboard.press("1")
    wait_for(lambda: ws.catalog.image(target).label == "0", "label after choosing a sort")

    # Findings: highest score first, filtered by kind; badges, and a marker where label and model disagree.
    page.click("[data-testid=btn-findings]")
    page.wait_for_selector("[data-testid=title] >> text=highest finding score first")
    assert page.eval_on_selector_all(".card", "els => els.map(e => Number(e.dataset.id))") == [5, odd, 1]
    assert "label? →" in page.inner_text(f"[data-testid=card-{odd}] .badges")
    assert page.is_visible(f"[data-testid=disagree-{odd}]")
    assert page.inner_text("[data-testid=card-5] .badges") == "blurry"
    shot(page, "label-findings.png")
    page.select_option("[data-testid=filter-finding]", "blurry")
    page.wait_for_selector("[data-testid=title] >> text=with a blurry finding")
    assert page.eval_on_selector_all(".card", "els => els.map(e => Number(e.dataset.id))") == [5, 1]
    page.click("[data-testid=btn-grid]")
    page.wait_for_selector("[data-testid=title] >> text=24 images")

    # Links: #image=ID (and ?image=ID) open that image, with the token in the query still working; one beyond
    # the first page opens on its own.
    name7 = Path(ws.catalog.image(7).path).name
    page.goto(url + "?token=tok3n#image=7")
    page.wait_for_selector(f"[data-testid=viewer-meta] >> text={name7}")
    page.goto(url + "?image=9&token=tok3n")
    page.wait_for_selector(f"[data-testid=viewer-meta] >> text={Path(ws.catalog.image(9).path).name}")
    page.goto(url + "?token=tok3n&page_size=5#image=20")
    page.wait_for_selector(f"[data-testid=viewer-meta] >> text={Path(ws.catalog.image(20).path).name}")
    shot(page, "label-link.png")

    # The viewer pages past the loaded images by itself.
    page.goto(url + "?token=tok3n&page_size=5")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator(".card").count() == 5
    page.keyboard.press("Enter")
    page.wait_for_selector("#v-pos >> text=1 / 24")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
        settled(page)
    page.wait_for_selector("#v-pos >> text=7 / 24")
    assert page.locator(".card").count() == 10
