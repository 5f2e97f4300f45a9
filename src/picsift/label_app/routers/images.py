"""GET /api/images (a filtered, sorted page), one image's detail, thumbnail and larger view; undo its last label."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from picsift.data.images import catalog_source
from picsift.data.presence import file_problem
from picsift.errors import DiskError, ImageDecodeError
from picsift.label.listing import ImageQuery, image_detail, list_images, parse_ids
from picsift.label.thumbs import cached_thumbnail, preview
from picsift.label_app.deps import AnnotatorDep, PredictionsDep, SettingsDep, WorkspaceDep, run_of_workspace
from picsift.label_app.schemas import PathId, UndoBody
from picsift.web.errors import error_responses

router = APIRouter(prefix="/api/images", tags=["images"])

FULL_SIZE = 1024  # px, longest side of the single-image view


def _check_file(image_id: int, path: str) -> None:
    """404 with a `detail` saying why when the catalog image's file is missing on disk or unreadable."""
    problem = file_problem(path)
    if problem is not None:
        raise HTTPException(
            404, f"image {image_id} ({path}): {problem} (moved or changed since import; run `picsift status`)"
        )


def _undecodable(image_id: int, path: str, e: Exception) -> HTTPException:
    return HTTPException(404, f"image {image_id} ({path}): no longer decodes: {e}")


@router.get("", responses=error_responses(404))
def images(
    ws: WorkspaceDep,
    preds: PredictionsDep,
    view: str = "all",
    label: str | None = None,
    split: str | None = None,
    sort: str = "id",
    ids: str | None = None,
    offset: int = Query(0, ge=0),
    limit: int = Query(200, ge=1, le=2000),
    finding: str | None = None,
    run: str | None = None,
) -> dict[str, Any]:
    """view: all | unlabeled | labeled | proposed | excluded | findings; sort: id | confidence | uncertainty |
    finding; finding: a finding kind; run: whose predictions (default: the latest run the user trained)."""
    query = ImageQuery(
        view, label, split, sort, parse_ids(ids), offset, limit, finding or None, run_of_workspace(ws, run)
    )
    return list_images(ws, preds, query)


@router.get("/{image_id}", responses=error_responses(404))
def detail(image_id: PathId, ws: WorkspaceDep, preds: PredictionsDep, run: str | None = None) -> dict[str, Any]:
    """GET /api/images/{id}: the image with its metadata, label history, proposals, findings and
    predictions; 404 for an unknown id."""
    return image_detail(ws, preds, image_id, run_of_workspace(ws, run))


@router.get(
    "/{image_id}/thumb",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG"}, **error_responses(404)},
)
def thumbnail(image_id: PathId, ws: WorkspaceDep, settings: SettingsDep) -> Response:
    """GET /api/images/{id}/thumb: a cached JPEG thumbnail; 404 for an unknown id or a missing or undecodable file."""
    row = ws.catalog.image(image_id)
    _check_file(image_id, row.path)
    try:
        path = cached_thumbnail(ws.cache_dir, row, settings.thumb_size)
    except DiskError:  # no room for the cache (a full or read-only disk): the thumbnail all the same, uncached
        try:
            return Response(preview(row.path, settings.thumb_size), media_type="image/jpeg")
        except (ImageDecodeError, OSError) as e:
            raise _undecodable(image_id, row.path, e) from e
    except (ImageDecodeError, OSError) as e:
        raise _undecodable(image_id, row.path, e) from e
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@router.get(
    "/{image_id}/full",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG"}, **error_responses(404)},
)
def full_image(image_id: PathId, ws: WorkspaceDep) -> Response:
    """GET /api/images/{id}/full: a JPEG at most 1024 px on its longest side; 404 as for the thumbnail."""
    row = ws.catalog.image(image_id)
    _check_file(image_id, row.path)
    try:
        data = preview(catalog_source(row.path, row.sha256, ws.cache_dir), FULL_SIZE, quality=90)
    except (ImageDecodeError, OSError) as e:
        raise _undecodable(image_id, row.path, e) from e
    return Response(data, media_type="image/jpeg")


@router.post("/{image_id}/undo", responses=error_responses(400, 404, 409))
def undo(image_id: PathId, body: UndoBody, ws: WorkspaceDep, who: AnnotatorDep) -> dict[str, Any]:
    """POST /api/images/{id}/undo: step back one label change (repeated undos go further back); 400 when none
    is left to undo, 404 for an unknown id, 409 when stale."""
    done = ws.catalog.undo_label(image_id, annotator=who, expected_version=body.expected_version)
    return {"image_id": image_id, "label": done.label, "version": done.version}
