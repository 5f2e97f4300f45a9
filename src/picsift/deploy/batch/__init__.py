"""Batch prediction of many images into a folder of shards, resumable after a kill.

- `input_stream` (picsift.data)  what the inputs are and how each is opened (the place to add locations)
- `decode`      worker processes decoding batches of the input order
- `shards`      a shard's columns and its CSV or Parquet file, written atomically
- `manifest`    manifest.json: the settings, the inputs' digest and the shards written
- `pipeline`    plan, resume and predict
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from picsift.deploy.batch.manifest import Manifest, folder_digest
from picsift.deploy.batch.pipeline import BatchJob, BatchSummary, InputPlan, open_output, plan_inputs, run_batches
from picsift.deploy.batch.shards import FORMATS
from picsift.inference import Predictor

__all__ = ["FORMATS", "BatchJob", "BatchSummary", "InputPlan", "folder_digest", "predict_to_folder"]


def predict_to_folder(
    predictor: Predictor, job: BatchJob, *, model: dict[str, Any], overwrite: bool = False
) -> BatchSummary:
    """Predict `job`'s inputs with `predictor` into `job.out` (see picsift.deploy.batch.pipeline).

    `model`: {"fingerprint": a digest of what the predictor loaded, "source": its path}; a re-run resumes only
    with the same fingerprint, runtime, test-time views, unknown rejection, top_k, format and shard size, over
    the same inputs. Raises DatasetError (a folder or pattern without images; inputs changing mid-run),
    ConfigError (the folder holds other predictions, unless `overwrite`), OSError from the disk.
    """
    plan = plan_inputs(job.sources, job.files_from, job.shard_size)
    settings = {
        "model": {"fingerprint": model["fingerprint"], "runtime": predictor.runtime.name},
        "top_k": job.top_k,
        "tta": predictor.tta_views,
        "reject_unknown": predictor.rejector is not None,
        "format": job.format,
        "shard_size": job.shard_size,
    }
    inputs = {
        "sources": list(job.sources),
        "files_from": [str(f) for f in job.files_from],
        "count": plan.count,
        "sha256": plan.sha256,
        "shards": len(plan.shard_digests),
    }
    fresh = Manifest(settings, inputs, {}, {"model": str(model.get("source", ""))})
    manifest = open_output(Path(job.out), fresh, overwrite)
    return run_batches(predictor, job, plan, manifest)
