"""End to end in a real browser: Debian's chromium driven by Playwright labels images with the keyboard.

The real app runs under uvicorn on a free loopback port in a thread; the test then checks the catalog.
Set PICSIFT_SCREENSHOTS_DIR=docs/img to also save the screenshots in docs/label.md, PICSIFT_CHROMIUM to use another
chromium executable. Without chromium or playwright every test here skips (fails under PICSIFT_REQUIRE_ALL=1)
before it starts anything.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from picsift.label.web import LabelSettings, create_app
from picsift.store import Workspace
from support.images import require
from support.label import make_workspace

CHROMIUM_ENV = "PICSIFT_CHROMIUM"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chromium_path() -> Path:
    """The chromium executable ($PICSIFT_CHROMIUM, else Debian's), once it and the playwright package are known
    to be there: skips (fails under PICSIFT_REQUIRE_ALL=1) otherwise. Every browser fixture depends on it."""
    path = Path(os.environ.get(CHROMIUM_ENV) or DEBIAN_CHROMIUM)
    require(
        path.is_file() and os.access(path, os.X_OK),
        f"chromium not found at {path} (apt-get install chromium, or set {CHROMIUM_ENV})",
    )
    try:
        importlib.import_module("playwright.sync_api")
        playwright_error = ""
    except ImportError as e:
        playwright_error = str(e)
    require(
        not playwright_error, f"the playwright package cannot be imported ({playwright_error}): pip install playwright"
    )
    return path


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


@pytest.fixture
def page(chromium_path: Path, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium_path),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        pg = context.new_page()
        pg.set_default_timeout(20000)
        yield pg
        context.close()


def settled(page) -> None:
    """Wait until the app has no request in flight (it counts them in body[data-pending])."""
    page.wait_for_selector("body[data-pending='0']", state="attached")


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def shot(page, name: str) -> None:
    out = os.environ.get("PICSIFT_SCREENSHOTS_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name))


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
    page.keyboard.press("u")
    wait_for(lambda: ws.catalog.image(second).label is None, "undo")
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
    ids = [
        int(x) for x in page.eval_on_selector_all("[data-testid=cluster-0] .card", "els => els.map(e => e.dataset.id)")
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
    """Review a served model's feedback with the keyboard and a click; exclude an image and undo it."""
    import io

    from PIL import Image as PILImage

    from picsift.deploy.feedback import FeedbackStore

    url, ws = server

    def png(value: int) -> bytes:
        buf = io.BytesIO()
        PILImage.new("RGB", (12, 12), (value, 255 - value, 40)).save(buf, format="PNG")
        return buf.getvalue()

    store = FeedbackStore(ws)
    first = store.add("2", image=png(10), predicted_label="1", confidence=0.7, comment="clearly a two")
    second = store.add("0", image=png(200), predicted_label="0", comment="spam")
    page.goto(url + "?token=tok3n")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("[data-testid=annotator]", "dana")
    page.press("[data-testid=annotator]", "Enter")
    page.wait_for_selector("[data-testid=btn-feedback] >> text=Feedback (2)")
    page.click("[data-testid=btn-feedback]")
    page.wait_for_selector(f"[data-testid=fb-{first.id}] >> text=clearly a two")
    assert "suggested: 2" in page.inner_text(f"[data-testid=fb-{first.id}]")
    shot(page, "label-feedback.png")

    # The cursor starts on the first item: "a" accepts it into the catalog with the suggested label.
    page.click("[data-testid=title]")
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

    # Exclude the image under the cursor with "x", then undo: one reversible catalog action.
    page.select_option("[data-testid=view]", "all")
    page.wait_for_selector("[data-testid=card-3]")
    page.click("[data-testid=card-3]")
    page.keyboard.press("x")
    wait_for(lambda: ws.catalog.image(3).excluded, "excluded")
    settled(page)  # the app records the undo entry when the server answers, a moment after the catalog changes
    assert [(a["kind"], a["actor"]) for a in ws.catalog.actions()] == [("manual", "dana")]
    page.keyboard.press("u")
    wait_for(lambda: not ws.catalog.image(3).excluded, "exclusion undone")
    assert ws.catalog.actions()[0]["undone_at"] is not None
