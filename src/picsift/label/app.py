"""The labelling web app: `create_app(settings)` -> a FastAPI app serving a JSON API and a static UI.

One router per resource (images, classes, labels, proposals, exclusions, feedback, queue, jobs). Settings and the
workspace are injected with `Depends`, so tests can override them; nothing is created at import.
Every label change goes through the catalog with the annotator's name and time; a write based on a
stale version gets HTTP 409 with the catalog's message (the later writer loses, never silently).
"""

from __future__ import annotations

import getpass
import io
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from picsift.errors import (
    ConfigError,
    DatasetError,
    ImageDecodeError,
    PicsiftError,
    RunNotFoundError,
    WorkspaceError,
)
from picsift.json_response import StrictJSONResponse
from picsift.label.jobs import Job, Jobs
from picsift.label.scoring import PredictionCache, latest_run
from picsift.labels_text import normalize_label, normalize_optional_label
from picsift.store import ImageRow, LabelConflictError, Workspace

log = logging.getLogger("picsift.label")

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TOKEN_COOKIE = "picsift_token"
FINDINGS_FILE = "findings.json"


@dataclass(frozen=True)
class LabelSettings:
    workspace: Path
    token: str | None = None  # required on every request when set
    annotator: str = ""  # default name recorded with label changes (the browser may send its own)
    thumb_size: int = 160
    train_model: str = "fastcnn"

    @property
    def default_annotator(self) -> str:
        if self.annotator:
            return self.annotator
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "picsift"


def needs_token(host: str) -> bool:
    return host not in LOOPBACK


def new_token() -> str:
    return secrets.token_urlsafe(18)


# ---- dependencies -------------------------------------------------------------------------------
def get_settings(request: Request) -> LabelSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_workspace(request: Request, settings: LabelSettings = Depends(get_settings)) -> Workspace:
    state = request.app.state
    with state.lock:
        ws = state.workspaces.get(settings.workspace)
        if ws is None:
            ws = Workspace.open(settings.workspace)
            state.workspaces[settings.workspace] = ws
    return ws  # type: ignore[no-any-return]


def get_predictions(request: Request) -> PredictionCache:
    return request.app.state.predictions  # type: ignore[no-any-return]


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs  # type: ignore[no-any-return]


def annotator(request: Request, settings: LabelSettings = Depends(get_settings)) -> str:
    """Who is labelling: the browser's X-Picsift-User header, else the server's default name."""
    name = (request.headers.get("x-picsift-user") or "").strip()[:100]
    return name or settings.default_annotator


def require_token(request: Request, settings: LabelSettings = Depends(get_settings)) -> None:
    if settings.token is None:
        return
    given = (
        request.headers.get("x-picsift-token") or request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
    )
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given or not secrets.compare_digest(given, settings.token):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: open the URL printed by `picsift label` (it ends with ?token=...)",
        )


# ---- helpers ------------------------------------------------------------------------------------
def load_findings(ws: Workspace) -> list[dict[str, Any]]:
    """The cleaning stage's findings.json (a list, or {"findings": [...]}); [] if absent or unreadable."""
    path = ws.root / FINDINGS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("ignoring unreadable %s", path)
        return []
    items = data.get("findings", []) if isinstance(data, dict) else data
    out = []
    for f in items if isinstance(items, list) else []:
        if not isinstance(f, dict):
            continue
        ids = f.get("image_ids")
        if ids is None and "image_id" in f:
            ids = [f["image_id"]]
        out.append({**f, "image_ids": [int(i) for i in ids or [] if str(i).lstrip("-").isdigit()]})
    return out


def _prediction(probs: np.ndarray | None, classes: list[str]) -> dict[str, Any] | None:
    if probs is None or not classes:
        return None
    order = np.argsort(-probs)
    margin = float(probs[order[0]] - probs[order[1]]) if len(order) > 1 else 1.0
    return {
        "label": classes[int(order[0])],
        "confidence": float(probs[order[0]]),
        "margin": margin,
        "top": [{"label": classes[int(i)], "probability": float(probs[i])} for i in order[:3]],
    }


def _item(row: ImageRow, proposal: dict[str, Any] | None, pred: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": Path(row.path).name,
        "label": row.label,
        "version": row.label_version,
        "split": row.split,
        "excluded": row.excluded,
        "readable": row.readable,
        "proposal": None if proposal is None else {k: proposal[k] for k in ("id", "label", "confidence", "origin")},
        "prediction": pred,
    }


def _pending_feedback(ws: Workspace) -> int:
    from picsift.deploy.feedback import FeedbackStore

    return len(FeedbackStore(ws).items("pending"))


def _jpeg(img: Any, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _open_image(image_id: int, path: str) -> Any:
    """The catalog image as an RGB PIL image; 404 with a JSON `detail` that says why when its file is missing
    on disk, cannot be read or no longer decodes."""
    from picsift.data.available import file_problem
    from picsift.data.images import load_rgb

    problem = file_problem(path)
    if problem is not None:
        raise HTTPException(
            404, f"image {image_id} ({path}): {problem} (moved or changed since import; run `picsift status`)"
        )
    try:
        return load_rgb(path)
    except (ImageDecodeError, OSError) as e:
        raise HTTPException(404, f"image {image_id} ({path}): no longer decodes: {e}") from e


# ---- request bodies -----------------------------------------------------------------------------
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


class TrainBody(BaseModel):
    model: str | None = None
    epochs: int = 5


class AutolabelBody(BaseModel):
    method: str = "model"
    threshold: float = 0.9


# ---- routers ------------------------------------------------------------------------------------
def images_router() -> APIRouter:
    r = APIRouter(prefix="/api/images", tags=["images"])

    @r.get("")
    def list_images(
        view: str = "all",
        label: str | None = None,
        split: str | None = None,
        sort: str = "id",
        ids: str | None = None,
        offset: int = 0,
        limit: int = Query(200, le=2000),
        ws: Workspace = Depends(get_workspace),
        preds: PredictionCache = Depends(get_predictions),
    ) -> dict[str, Any]:
        """view: all | unlabeled | labeled | proposed | excluded; sort: id | confidence | uncertainty."""
        if view not in ("all", "unlabeled", "labeled", "proposed", "excluded"):
            raise ConfigError(f"unknown view {view!r}: all, unlabeled, labeled, proposed or excluded")
        if sort not in ("id", "confidence", "uncertainty"):
            raise ConfigError(f"unknown sort {sort!r}: id, confidence or uncertainty")
        id_list = [int(x) for x in ids.split(",") if x.strip()] if ids else None
        rows = ws.catalog.images(
            split=split or None,
            labeled={"unlabeled": False, "labeled": True}.get(view),
            readable=None,
            include_excluded=view in ("excluded", "all") or id_list is not None,
            ids=id_list,
        )
        if view == "excluded":
            rows = [x for x in rows if x.excluded]
        if label and label.strip():
            wanted = normalize_label(label)
            rows = [x for x in rows if x.label == wanted]
        proposals: dict[int, dict[str, Any]] = {}
        for p in ws.catalog.proposals():
            proposals.setdefault(p["image_id"], p)
        if view == "proposed":
            rows = [x for x in rows if x.id in proposals]
        if id_list is not None:
            by_id = {x.id: x for x in rows}
            rows = [by_id[i] for i in id_list if i in by_id]
        probs: dict[int, np.ndarray] = {}
        classes: list[str] = []
        run = None
        if sort != "id":
            probs, classes, run = preds.get(ws, rows)
            if run is None:
                raise RunNotFoundError("sorting by model confidence needs a trained run: press Train first")
            key = {i: float(np.max(p)) for i, p in probs.items()}
            sign = -1.0 if sort == "confidence" else 1.0
            rows = sorted(rows, key=lambda x: sign * key.get(x.id, 0.0 if sort == "confidence" else 2.0))
        page = rows[offset : offset + limit]
        if sort == "id" and page:
            try:
                probs, classes, run = preds.get(ws, page)
            except PicsiftError:  # a broken run must not hide the images
                log.warning("predictions unavailable", exc_info=True)
        return {
            "total": len(rows),
            "offset": offset,
            "run": run,
            "items": [_item(x, proposals.get(x.id), _prediction(probs.get(x.id), classes)) for x in page],
        }

    @r.get("/{image_id}")
    def image_detail(
        image_id: int, ws: Workspace = Depends(get_workspace), preds: PredictionCache = Depends(get_predictions)
    ) -> dict[str, Any]:
        row = ws.catalog.image(image_id)
        props = ws.catalog.proposals([image_id])
        pred = None
        if row.readable:
            try:
                probs, classes, _ = preds.get(ws, [row])
                pred = _prediction(probs.get(row.id), classes)
            except PicsiftError:
                log.warning("prediction unavailable for image %d", image_id, exc_info=True)
        out = _item(row, props[0] if props else None, pred)
        out.update(
            path=row.path,
            sha256=row.sha256,
            width=row.width,
            height=row.height,
            format=row.format,
            mode=row.mode,
            byte_size=row.byte_size,
            exif_time=row.exif_time,
            exif_camera=row.exif_camera,
            gps=[row.gps_lat, row.gps_lon] if row.gps_lat is not None else None,
            error=row.error,
            duplicate_of=row.duplicate_of,
            history=ws.catalog.label_history(image_id),
            proposals=props,
            findings=[f for f in load_findings(ws) if image_id in f["image_ids"]],
        )
        return out

    @r.get("/{image_id}/thumb")
    def thumbnail(
        image_id: int, ws: Workspace = Depends(get_workspace), settings: LabelSettings = Depends(get_settings)
    ) -> Response:
        row = ws.catalog.image(image_id)
        size = settings.thumb_size
        path = ws.cache_dir / "thumbs" / f"{row.sha256}-{size}.jpg"
        if not path.exists():
            img = _open_image(image_id, row.path)
            img.thumbnail((size, size))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(_jpeg(img))
            tmp.replace(path)
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    @r.get("/{image_id}/full")
    def full_image(image_id: int, ws: Workspace = Depends(get_workspace)) -> Response:
        row = ws.catalog.image(image_id)
        img = _open_image(image_id, row.path)
        img.thumbnail((1024, 1024))
        return Response(_jpeg(img, 90), media_type="image/jpeg")

    @r.post("/{image_id}/undo")
    def undo(
        image_id: int, body: UndoBody, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> dict[str, Any]:
        version = ws.catalog.undo_label(image_id, annotator=who, expected_version=body.expected_version)
        row = ws.catalog.image(image_id)
        return {"image_id": image_id, "label": row.label, "version": version}

    return r


def labels_router() -> APIRouter:
    r = APIRouter(prefix="/api/labels", tags=["labels"])

    @r.post("")
    def set_labels(
        body: LabelBody, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> StrictJSONResponse:
        """Label images (None removes the label). A stale expected version -> 409 for that image."""
        label = normalize_optional_label(body.label)  # LabelError (400) when empty
        applied: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        for image_id in body.image_ids:
            expected = (body.expected_versions or {}).get(image_id)
            previous = ws.catalog.image(image_id)
            try:
                version = ws.catalog.set_label(
                    image_id, label, origin="manual", annotator=who, expected_version=expected
                )
            except LabelConflictError as e:
                conflicts.append({"image_id": image_id, "message": str(e)})
                continue
            ws.catalog.close_proposals([image_id])
            applied.append({"image_id": image_id, "label": label, "version": version, "previous": previous.label})
        status = 409 if conflicts else 200
        detail = "; ".join(c["message"] for c in conflicts) if conflicts else None
        return StrictJSONResponse({"applied": applied, "conflicts": conflicts, "detail": detail}, status_code=status)

    return r


def classes_router() -> APIRouter:
    r = APIRouter(prefix="/api/classes", tags=["classes"])

    def listing(ws: Workspace) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for row in ws.catalog.images(labeled=True, readable=None):
            counts[row.label or ""] = counts.get(row.label or "", 0) + 1
        return [{"name": c, "count": counts.get(c, 0)} for c in ws.catalog.classes()]

    @r.get("")
    def list_classes(ws: Workspace = Depends(get_workspace)) -> list[dict[str, Any]]:
        return listing(ws)

    @r.post("")
    def create_class(body: ClassBody, ws: Workspace = Depends(get_workspace)) -> list[dict[str, Any]]:
        ws.catalog.add_class(normalize_label(body.name))  # LabelError (400) when empty
        return listing(ws)

    @r.post("/rename")
    def rename(
        body: RenameBody, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> dict[str, Any]:
        old, new = normalize_label(body.old), normalize_label(body.new)
        if new in ws.catalog.classes() and new != old:
            raise ConfigError(f"class {new!r} already exists: use merge to combine the two classes")
        changed = ws.catalog.relabel_class(old, new, annotator=who)
        return {"changed": changed, "classes": listing(ws)}

    @r.post("/merge")
    def merge(body: MergeBody, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)) -> dict[str, Any]:
        changed = 0
        target = normalize_label(body.target)
        for source in map(normalize_label, body.sources):
            if source != target:
                changed += ws.catalog.relabel_class(source, target, annotator=who)
        return {"changed": changed, "classes": listing(ws)}

    return r


def proposals_router() -> APIRouter:
    r = APIRouter(prefix="/api/proposals", tags=["proposals"])

    @r.get("")
    def list_proposals(ws: Workspace = Depends(get_workspace)) -> list[dict[str, Any]]:
        return ws.catalog.proposals()

    @r.post("/accept")
    def accept(
        body: ProposalIds, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> StrictJSONResponse:
        out = ws.catalog.resolve_proposals(body.ids, accept=True, annotator=who)
        if out["conflicts"]:
            out_any: dict[str, Any] = dict(out)
            out_any["detail"] = (
                f"{len(out['conflicts'])} proposal(s) not applied: the image was labelled differently "
                "in the meantime; reload to review"
            )
            return StrictJSONResponse(out_any, status_code=409)
        return StrictJSONResponse(out)

    @r.post("/reject")
    def reject(
        body: ProposalIds, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> dict[str, Any]:
        return ws.catalog.resolve_proposals(body.ids, accept=False, annotator=who)

    return r


def exclusions_router() -> APIRouter:
    """Exclude images from training and include them again, as reversible catalog actions."""
    r = APIRouter(prefix="/api/exclusions", tags=["exclusions"])

    @r.get("")
    def list_exclusions(ws: Workspace = Depends(get_workspace)) -> list[dict[str, Any]]:
        return ws.catalog.exclusions()

    @r.post("")
    def exclude(body: ExcludeBody, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)) -> dict:
        if not body.image_ids:
            raise ConfigError("no images to exclude: select at least one")
        for image_id in body.image_ids:
            ws.catalog.image(image_id)  # 404 for an unknown id before anything is written
        reason = body.reason.strip()[:500] or "excluded in the labelling app"
        action_id = ws.catalog.exclude(dict.fromkeys(body.image_ids, reason), kind="manual", actor=who, reason=reason)
        return {"action_id": action_id, "excluded": body.image_ids}

    @r.post("/undo")
    def undo(body: ActionBody, ws: Workspace = Depends(get_workspace)) -> dict[str, Any]:
        affected = sorted({e["image_id"] for e in ws.catalog.exclusions() if e["action_id"] == body.action_id})
        ws.catalog.undo(body.action_id)
        return {"undone": body.action_id, "images": affected}

    @r.post("/include")
    def include(body: IncludeBody, ws: Workspace = Depends(get_workspace)) -> StrictJSONResponse:
        """Include images again by undoing the actions that excluded them.

        An action is undone only if every image it excluded is among `image_ids`: including one image
        must not silently bring back others excluded with it (e.g. a curation run); those are
        reported as conflicts naming the action to undo instead.
        """
        wanted = set(body.image_ids)
        by_action: dict[int, set[int]] = {}
        for e in ws.catalog.exclusions():
            by_action.setdefault(int(e["action_id"]), set()).add(int(e["image_id"]))
        undone: list[int] = []
        conflicts: list[dict[str, Any]] = []
        for action_id, images in sorted(by_action.items()):
            hit = images & wanted
            if not hit:
                continue
            if images <= wanted:
                ws.catalog.undo(action_id)
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
        still = {
            x.id for x in ws.catalog.images(ids=sorted(wanted), readable=None, include_excluded=True) if x.excluded
        }
        out = {"undone": undone, "included": sorted(wanted - still), "conflicts": conflicts}
        if conflicts:
            return StrictJSONResponse({**out, "detail": "; ".join(c["message"] for c in conflicts)}, status_code=409)
        return StrictJSONResponse(out)

    return r


def feedback_router() -> APIRouter:
    """Review the corrections a served model collected (deploy stage): accept or reject them."""
    r = APIRouter(prefix="/api/feedback", tags=["feedback"])

    def store(ws: Workspace) -> Any:
        from picsift.deploy.feedback import FeedbackStore

        return FeedbackStore(ws)

    @r.get("")
    def list_feedback(status: str | None = "pending", ws: Workspace = Depends(get_workspace)) -> dict[str, Any]:
        """status: pending (default) | accepted | rejected | all."""
        items = store(ws).items(None if status in (None, "", "all") else status)
        return {"items": [i.to_dict() for i in items], "classes": ws.catalog.classes()}

    @r.get("/{feedback_id}/image")
    def feedback_image(
        feedback_id: int, ws: Workspace = Depends(get_workspace), settings: LabelSettings = Depends(get_settings)
    ) -> Response:
        from picsift.data.images import load_rgb

        item = store(ws).get(feedback_id)
        if not item.image_path:
            raise HTTPException(404, f"feedback {feedback_id} carries no image")
        root = ws.root.resolve()
        path = (root / item.image_path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise HTTPException(404, f"feedback {feedback_id}: its image is missing from the workspace")
        try:
            img = load_rgb(path)
        except (ImageDecodeError, OSError) as e:
            raise HTTPException(404, f"feedback {feedback_id}: image cannot be decoded: {e}") from e
        img.thumbnail((settings.thumb_size, settings.thumb_size))
        return Response(_jpeg(img), media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    def review(ids: list[int], ws: Workspace, who: str, accept: bool) -> StrictJSONResponse:
        fb = store(ws)
        done: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for fid in ids:  # one by one: a bad item must not block the rest of a bulk review
            try:
                out = fb.accept([fid], reviewer=who) if accept else fb.reject([fid], reviewer=who)
            except PicsiftError as e:
                errors.append({"id": fid, "message": str(e)})
                continue
            done.append(out[0].to_dict())
        key = "accepted" if accept else "rejected"
        body: dict[str, Any] = {key: done, "errors": errors}
        if errors:
            body["detail"] = "; ".join(e["message"] for e in errors)
            return StrictJSONResponse(body, status_code=409)
        return StrictJSONResponse(body)

    @r.post("/accept")
    def accept(
        body: FeedbackIds, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> StrictJSONResponse:
        """Accepted feedback enters the catalog labelled (split "feedback"), for `train --with-feedback`."""
        return review(body.ids, ws, who, accept=True)

    @r.post("/reject")
    def reject(
        body: FeedbackIds, ws: Workspace = Depends(get_workspace), who: str = Depends(annotator)
    ) -> StrictJSONResponse:
        return review(body.ids, ws, who, accept=False)

    return r


def queue_router() -> APIRouter:
    r = APIRouter(prefix="/api", tags=["queue"])

    @r.get("/queue")
    def next_batch(
        n: int = Query(24, ge=1, le=500), method: str = "margin", ws: Workspace = Depends(get_workspace)
    ) -> dict[str, Any]:
        from picsift.label.queue import next_batch as compute

        batch = compute(ws, n, method=method)
        return {
            "run": batch.run,
            "method": batch.method,
            "embeddings": batch.embeddings,
            "uncertainty_share": batch.uncertainty_share,
            "items": [i.to_dict() for i in batch.items],
        }

    @r.get("/clusters")
    def clusters(ws: Workspace = Depends(get_workspace)) -> dict[str, Any]:
        from picsift.label.autolabel import load_clusters

        data = load_clusters(ws)
        unlabeled = {x.id for x in ws.catalog.images(labeled=False)}
        out = []
        for c in data.get("clusters", []):
            ids = [i for i in c.get("image_ids", []) if i in unlabeled]
            if ids:
                out.append({**c, "image_ids": ids})
        return {**data, "clusters": out}

    @r.get("/summary")
    def summary(
        ws: Workspace = Depends(get_workspace),
        settings: LabelSettings = Depends(get_settings),
        who: str = Depends(annotator),
    ) -> dict[str, Any]:
        s = ws.catalog.summary()
        run = latest_run(ws)
        return {
            "workspace": str(ws.root),
            "images": s["images"],
            "labeled": s["labeled"],
            "unlabeled": s["unlabeled"],
            "excluded": s["excluded"],
            "proposals": len(ws.catalog.proposals()),
            "feedback": _pending_feedback(ws),
            "findings": len(load_findings(ws)),
            "splits": sorted(k for k in s["splits"] if k != "none"),
            "latest_run": run.name if run else None,
            "annotator": who,
            "token_required": settings.token is not None,
        }

    return r


def jobs_router() -> APIRouter:
    r = APIRouter(prefix="/api/jobs", tags=["jobs"])

    @r.post("/train")
    def train(
        body: TrainBody,
        settings: LabelSettings = Depends(get_settings),
        jobs: Jobs = Depends(get_jobs),
    ) -> dict[str, Any]:
        from picsift.config import TrainConfig

        if body.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {body.epochs}")
        name = f"app-{new_token()[:6].lower().replace('_', 'x').replace('-', 'x')}"
        cfg = TrainConfig(
            workspace=settings.workspace, model=body.model or settings.train_model, epochs=body.epochs, run_name=name
        ).validate()
        job = Job(
            0,
            "train",
            {"model": cfg.model, "epochs": cfg.epochs},
            run_name=name,
            runs_dir=settings.workspace / "runs",
            total_epochs=cfg.epochs,
        )

        def work() -> dict[str, Any]:
            from picsift.train import run

            result = run(cfg)
            return {"run_id": result.run_id, "val_acc": result.val_acc, "seconds": round(result.seconds, 1)}

        return jobs.start(job, work).to_dict()

    @r.post("/autolabel")
    def autolabel(
        body: AutolabelBody,
        settings: LabelSettings = Depends(get_settings),
        jobs: Jobs = Depends(get_jobs),
        who: str = Depends(annotator),
    ) -> dict[str, Any]:
        from picsift.label.autolabel import autolabel as run_autolabel

        def work() -> dict[str, Any]:
            ws = Workspace.open(settings.workspace)
            try:
                return run_autolabel(ws, body.method, threshold=body.threshold, annotator=f"model ({who})").to_dict()
            finally:
                ws.close()

        return jobs.start(Job(0, "autolabel", body.model_dump()), work).to_dict()

    @r.get("")
    def list_jobs(jobs: Jobs = Depends(get_jobs)) -> list[dict[str, Any]]:
        return [j.to_dict() for j in jobs.all()]

    @r.get("/{job_id}")
    def job_status(job_id: int, jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job.to_dict()

    return r


def static_router() -> APIRouter:
    r = APIRouter(tags=["ui"])

    @r.get("/", include_in_schema=False)
    def index(request: Request, settings: LabelSettings = Depends(get_settings)) -> Response:
        response = FileResponse(STATIC / "index.html", media_type="text/html")
        token = request.query_params.get("token")
        if settings.token and token:
            # The browser keeps the token in a cookie, so images and API calls need no query string.
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @r.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, f"no static file {name}")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    return r


def _status(exc: PicsiftError) -> int:
    if isinstance(exc, LabelConflictError):
        return 409
    if isinstance(exc, RunNotFoundError):
        return 404
    if isinstance(exc, WorkspaceError) and str(exc).startswith(("no image with id", "no feedback with id")):
        return 404
    if isinstance(exc, (ConfigError, DatasetError, WorkspaceError)):
        return 400
    return 400


def create_app(settings: LabelSettings) -> FastAPI:
    """The labelling app for one workspace. Every route requires the token when settings.token is set."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for ws in app.state.workspaces.values():
            ws.close()

    # No interactive docs: every route, documentation included, would have to sit behind the token.
    app = FastAPI(
        title="picsift label",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        default_response_class=StrictJSONResponse,  # NaN in a metric -> null, never a 500
    )
    app.state.settings = settings
    app.state.workspaces = {}
    app.state.lock = threading.Lock()
    app.state.predictions = PredictionCache()
    app.state.jobs = Jobs()
    guard = [Depends(require_token)]
    for router in (
        static_router(),
        images_router(),
        labels_router(),
        classes_router(),
        proposals_router(),
        exclusions_router(),
        feedback_router(),
        queue_router(),
        jobs_router(),
    ):
        app.include_router(router, dependencies=guard)

    @app.exception_handler(PicsiftError)
    def picsift_error(_request: Request, exc: PicsiftError) -> StrictJSONResponse:
        return StrictJSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=_status(exc))

    return app
