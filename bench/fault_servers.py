"""Kill scenarios of the two web apps: `picsift label` with clients writing labels, `picsift serve` with clients
sending feedback (then `picsift feedback accept` killed too). Every write answered 2xx must be in the catalog."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from faultkit import (
    Outcome,
    Server,
    catalog_ok,
    copy_workspace,
    kill_after,
    must,
    new_token,
    picsift,
    png_bytes,
    query,
    run,
    window,
    write_images,
    writing,
)

CLIENTS = 4
LABELS = ("red", "green", "blue")


def label_client(url: str, token: str, k: int, ids: list[int], stop: threading.Event, acked: list[Any]) -> None:
    """Like the labelling page: open the URL with ?token= (the app moves it into a cookie), then POST labels with
    the X-Picsift-Client header; each 200 is an acknowledged write, recorded with the unique annotator it named."""
    import httpx

    rng = random.Random(k)
    with httpx.Client(base_url=url, headers={"X-Picsift-Client": "bench"}, timeout=10) as c:
        try:
            page = c.get("/", params={"token": token}, follow_redirects=True)  # 303 to / without the token
            if page.status_code != 200 or not any(name.startswith("picsift_token") for name in c.cookies):
                raise RuntimeError("the labelling page did not set its token cookie")
            j = 0
            while not stop.is_set():
                image_id, label, who = rng.choice(ids), rng.choice(LABELS), f"client{k}-{j}"
                r = c.post(
                    "/api/labels", json={"image_ids": [image_id], "label": label}, headers={"X-Picsift-User": who}
                )
                if r.status_code == 200:
                    acked.append((image_id, label, who, r.json()["applied"][0]["version"]))
                j += 1
        except httpx.HTTPError:
            return  # the server was killed


def label_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    out = Outcome("label-kill")
    template = tmp / "ws-label-template"
    must("import", str(write_images(tmp / "label-images", 150, 3, seed=11, size=16)), "-w", str(template))
    ids = [row[0] for row in query(template, "SELECT id FROM images")]
    for k in range(kills):
        ws = copy_workspace(template, tmp / f"ws-label-{k}")
        token = new_token()
        server = Server("label", "-w", str(ws), "--no-browser", "--token", token, ready_path="/api/summary",
                        headers={"X-Picsift-Token": token})  # fmt: skip
        try:
            server.wait_ready()
            acked: list[Any] = []
            stop = threading.Event()
            clients = [
                threading.Thread(target=label_client, args=(server.url, token, i, ids, stop, acked))
                for i in range(CLIENTS)
            ]
            for c in clients:
                c.start()
            deadline = time.time() + 30
            while not acked and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.5))
            server.kill()
            stop.set()
            for c in clients:
                c.join()
        finally:
            server.kill()
        if not acked:
            raise RuntimeError("label-kill: no label write was acknowledged before the kill")
        out.kills += 1
        if not catalog_ok(ws):
            out.catalogs_corrupted += 1
            continue
        versions = dict(query(ws, "SELECT id, label_version FROM images"))
        for image_id, label, who, version in acked:
            found = query(ws, "SELECT COUNT(*) FROM labels WHERE image_id=? AND annotator=? AND label=?",
                          image_id, who, label)[0][0]  # fmt: skip
            if found != 1 or versions[image_id] < version:
                out.acknowledged_lost += 1
        out.notes += f"kill {k}: {len(acked)} acknowledged; "
        again = Server("label", "-w", str(ws), "--no-browser", "--token", token, ready_path="/api/summary",
                       headers={"X-Picsift-Token": token})  # fmt: skip
        try:
            again.wait_ready()
            import httpx

            r = httpx.post(again.url + "/api/labels", json={"image_ids": [ids[0]], "label": "after"},
                           headers={"X-Picsift-Token": token}, timeout=10)  # fmt: skip
            if r.status_code == 200 and query(ws, "SELECT label FROM images WHERE id=?", ids[0])[0][0] == "after":
                out.resumes_ok += 1
        except RuntimeError as e:
            out.notes += f"kill {k}: restart failed: {e}; "
        finally:
            again.stop()
    return out


def feedback_client(url: str, k: int, stop: threading.Event, acked: list[Any]) -> None:
    """POST /v1/feedback with a new image each time (multipart); each 201 is an acknowledged write."""
    import httpx

    j = 0
    with httpx.Client(base_url=url, timeout=10) as c:
        try:
            while not stop.is_set():
                data = png_bytes(1_000_000 * (k + 1) + j)
                r = c.post("/v1/feedback", files={"file": (f"{k}-{j}.png", data, "image/png")},
                           data={"label": LABELS[j % 3], "comment": f"client{k}-{j}"})  # fmt: skip
                if r.status_code == 201:
                    acked.append((r.json()["feedback_id"], r.json()["sha256"], f"client{k}-{j}"))
                j += 1
        except httpx.HTTPError:
            return


_MODEL: list[tuple[Path, Path]] = []  # the template made first, reused while its folder exists


def model_template(tmp: Path) -> tuple[Path, Path]:
    """A workspace with one finished fastcnn run, and that run exported to a bundle: (workspace, bundle)."""
    if _MODEL and (_MODEL[0][1] / "bundle.json").is_file():
        return _MODEL[0]
    template, bundle = tmp / "ws-model-template", tmp / "bundle"
    must("import", str(write_images(tmp / "model-images", 90, 3, seed=21, size=16)), "-w", str(template))
    must("train", "-w", str(template), "--model", "fastcnn", "--epochs", "1", "--device", "cpu")
    must("export", "-w", str(template), "--out", str(bundle))
    _MODEL[:] = [(template, bundle)]
    return template, bundle


def feedback_kill(tmp: Path, kills: int, rng: random.Random) -> Outcome:
    out = Outcome("feedback-kill")
    template, bundle = model_template(tmp)
    accept_time: float | None = None
    for k in range(kills):
        ws = copy_workspace(template, tmp / f"ws-feedback-{k}")
        server = Server("serve", str(bundle), "-w", str(ws), ready_path="/healthz")
        try:
            server.wait_ready()
            acked: list[Any] = []
            stop = threading.Event()
            clients = [threading.Thread(target=feedback_client, args=(server.url, i, stop, acked)) for i in range(3)]
            for c in clients:
                c.start()
            deadline = time.time() + 30
            while len(acked) < 3 and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.0))
            server.kill()
            stop.set()
            for c in clients:
                c.join()
        finally:
            server.kill()
        out.kills += 1
        if not catalog_ok(ws):
            out.catalogs_corrupted += 1
            continue
        stored = {row[0]: row[1:] for row in query(ws, "SELECT id, sha256, comment, image_path FROM feedback")}
        for fid, sha, comment in acked:
            row = stored.get(fid)
            if row is None or row[0] != sha or row[1] != comment or not (ws / row[2]).is_file():
                out.acknowledged_lost += 1
        # Accepting them is all-or-nothing per item: killed midway, each is pending (catalog untouched) or accepted.
        pending = [str(row[0]) for row in query(ws, "SELECT id FROM feedback WHERE status='pending'")]
        accept = ("feedback", "accept", *pending, "-w", str(ws))
        if accept_time is None:  # from its first write to its exit, unkilled
            probe = copy_workspace(ws, tmp / f"ws-feedback-time-{k}")
            accept_time = window(picsift(*accept[:-1], str(probe)), writing(probe))
        kill_after(picsift(*accept), writing(ws), rng.uniform(0.0, 1.0) * accept_time)
        if not catalog_ok(ws):
            out.catalogs_corrupted += 1
            continue
        out.half_done += half_accepted(ws)
        server = Server("serve", str(bundle), "-w", str(ws), ready_path="/healthz")
        try:
            server.wait_ready()
            import httpx

            r = httpx.post(server.url + "/v1/feedback", files={"file": ("x.png", png_bytes(7 + k), "image/png")},
                           data={"label": "red"}, timeout=10)  # fmt: skip
            restarted = r.status_code == 201
        except RuntimeError as e:
            restarted = False
            out.notes += f"kill {k}: restart failed: {e}; "
        finally:
            server.stop()
        left = [str(row[0]) for row in query(ws, "SELECT id FROM feedback WHERE status='pending'")]
        again = run("feedback", "accept", *left, "-w", str(ws))
        if restarted and again.returncode == 0 and not query(ws, "SELECT id FROM feedback WHERE status='pending'"):
            out.resumes_ok += 1
        elif again.returncode != 0:
            out.notes += f"kill {k}: accept again failed: {again.stderr.strip().splitlines()[-1:]}; "
    return out


def half_accepted(ws: Path) -> int:
    """Feedback items neither wholly pending (no catalog image of their bytes) nor wholly accepted (their image
    catalogued, labelled with their label by a feedback label event)."""
    bad = 0
    for _, status, sha, label, image_id in query(ws, "SELECT id, status, sha256, label, image_id FROM feedback"):
        images = query(ws, "SELECT id, label FROM images WHERE sha256=?", sha)
        if status == "pending":
            bad += bool(images) or image_id is not None
        elif status == "accepted":
            events = query(ws, "SELECT COUNT(*) FROM labels WHERE image_id=? AND origin='feedback' AND label=?",
                           image_id, label)[0][0]  # fmt: skip
            bad += not (images and images[0] == (image_id, label) and events >= 1)
    return bad
