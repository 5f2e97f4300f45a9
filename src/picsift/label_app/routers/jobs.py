"""Background jobs started from the app: train a model, auto-label; poll their progress."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from picsift.config import MAX_EPOCHS, TrainConfig, check_number
from picsift.label.autolabel import autolabel as run_autolabel
from picsift.label.jobs import Job
from picsift.label_app.deps import AnnotatorDep, JobsDep, SettingsDep
from picsift.label_app.schemas import AutolabelBody, TrainBody
from picsift.label_app.settings import new_token
from picsift.store import Workspace
from picsift.web.errors import error_responses

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.post("/train")
def train(body: TrainBody, settings: SettingsDep, jobs: JobsDep) -> dict[str, Any]:
    """POST /api/jobs/train: start training a model in the background; 400 for epochs below 1 or an unknown model."""
    check_number(body.epochs, "epochs", low=1, high=MAX_EPOCHS, whole=True)
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
        from picsift.api.train import train_model  # torch loads with the first training, not with the app

        # As `picsift train` does: the same run, calibrated on validation afterwards.
        result = train_model(
            workspace=cfg.workspace, model=cfg.model, epochs=cfg.epochs, run_name=cfg.run_name, seed=cfg.seed
        )
        return {"run_id": result.run_id, "val_acc": result.val_acc, "seconds": round(result.seconds, 1)}

    return jobs.start(job, work).to_dict()


@router.post("/autolabel")
def autolabel(body: AutolabelBody, settings: SettingsDep, jobs: JobsDep, who: AnnotatorDep) -> dict[str, Any]:
    """POST /api/jobs/autolabel: start auto-labelling in the background; returns the job (its errors show in it)."""

    def work() -> dict[str, Any]:
        ws = Workspace.open(settings.workspace)  # the job's own connection: it outlives the request
        try:
            return run_autolabel(ws, body.method, threshold=body.threshold, annotator=f"model ({who})").to_dict()
        finally:
            ws.close()

    return jobs.start(Job(0, "autolabel", body.model_dump()), work).to_dict()


@router.get("")
def all_jobs(jobs: JobsDep) -> list[dict[str, Any]]:
    """GET /api/jobs: every job started since the app started."""
    return [j.to_dict() for j in jobs.all()]


@router.get("/{job_id}", responses=error_responses(404))
def job_status(job_id: int, jobs: JobsDep) -> dict[str, Any]:
    """GET /api/jobs/{id}: one job's status and progress; 404 for an unknown id."""
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job.to_dict()
