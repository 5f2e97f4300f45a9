"""Batch prediction into a folder of shards: decode in worker processes, predict in batches, write as it goes.

    inputs (enumerated twice, lazily) -> N decoding processes -> Predictor, one batch at a time -> shards

1. Plan: the inputs are enumerated once to count them and hash their paths (whole and per shard), without
   decoding; this sizes the progress bar and is what a later run compares to refuse other inputs.
2. Resume: the output folder's manifest lists the shards already written; those whose file still has the
   recorded bytes are skipped, without decoding their images.
3. Predict: `DecodedBatches` decodes the other shards' images in `workers` processes (torch DataLoader; 0:
   in this process), the Predictor predicts each batch as it comes, and each shard is written (temporary file,
   then rename) as soon as its last batch is predicted, then recorded in the manifest.

Memory stays bounded whatever the number of inputs: one shard's rows, the batches in flight (2 per worker), one
folder listing per enumeration and the per-shard digests (64 characters per `shard_size` inputs).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from picsift import progress
from picsift.data.input_stream import iter_inputs
from picsift.data.walk import SkippedFile, reason_kind
from picsift.deploy.batch.decode import DecodedBatches
from picsift.deploy.batch.manifest import (
    MANIFEST_FILE,
    SHARD_PREFIX,
    Manifest,
    check_resumable,
    file_digest,
    path_digest,
    read_manifest,
    shard_file,
)
from picsift.deploy.batch.shards import ShardRows, columns, write_shard
from picsift.errors import ConfigError, DatasetError
from picsift.inference import Predictor, top_classes

log = logging.getLogger("picsift.deploy")

SKIPPED_EXAMPLES = 5  # entries a walk skipped that the summary names; the rest are counted by kind


@dataclass
class InputPlan:
    """What the inputs are, from one enumeration: how many paths, the sha256 of all of them in order and of
    each shard's, and what the folders and patterns held that is not an image (counted by kind, a few named)."""

    count: int
    sha256: str
    shard_digests: list[str]
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: list[SkippedFile] = field(default_factory=list)

    def shard_rows(self, shard: int, shard_size: int) -> int:
        """How many inputs shard `shard` covers."""
        return min(shard_size, self.count - shard * shard_size)


def plan_inputs(sources: Sequence[str], files_from: Sequence[str | Path], shard_size: int) -> InputPlan:
    """Enumerate the inputs once (see `picsift.data.input_stream.iter_inputs`, whose DatasetError it raises;
    also DatasetError when there is no input at all)."""
    plan = InputPlan(0, "", [])

    def skipped(s: SkippedFile) -> None:
        plan.skipped[reason_kind(s.reason)] += 1
        if len(plan.skipped_examples) < SKIPPED_EXAMPLES:
            plan.skipped_examples.append(s)

    whole, shard = hashlib.sha256(), hashlib.sha256()
    for path in iter_inputs(sources, files_from, on_skip=skipped):
        data = path.encode("utf-8", "surrogateescape") + b"\0"
        whole.update(data)
        shard.update(data)
        plan.count += 1
        if plan.count % shard_size == 0:
            plan.shard_digests.append(shard.hexdigest())
            shard = hashlib.sha256()
    if plan.count % shard_size:
        plan.shard_digests.append(shard.hexdigest())
    if plan.count == 0:
        raise DatasetError("no input paths: the list files are empty")
    plan.sha256 = whole.hexdigest()
    return plan


@dataclass(frozen=True)
class BatchSummary:
    """What a batch prediction left in `out`: `inputs` paths in `shards` shard files (`rows`, of which
    `errors` could not be read, over every shard, including those earlier runs wrote), `written_now` shards
    and `predicted_now` rows written by this run in `seconds`, `resumed` shards found already written, and what
    the folders held that is not an image (`skipped` by kind, a few `skipped_examples`)."""

    out: Path
    format: str
    inputs: int
    shards: int
    rows: int
    errors: int
    written_now: int
    predicted_now: int
    resumed: int
    seconds: float
    skipped: dict[str, int]
    skipped_examples: list[SkippedFile]

    @property
    def manifest(self) -> Path:
        """The folder's manifest.json."""
        return self.out / MANIFEST_FILE

    @property
    def images_per_second(self) -> float:
        """Rows written by this run per second of its prediction (0 when it wrote none)."""
        return self.predicted_now / self.seconds if self.seconds > 0 and self.predicted_now else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "out": str(self.out),
            "manifest": str(self.manifest),
            "format": self.format,
            "inputs": self.inputs,
            "shards": self.shards,
            "rows": self.rows,
            "errors": self.errors,
            "written_now": self.written_now,
            "predicted_now": self.predicted_now,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "skipped": self.skipped,
            "skipped_examples": [{"path": str(s.path), "reason": s.reason} for s in self.skipped_examples],
        }


def _own_files(out: Path) -> list[Path]:
    """The shard files, the manifest and their temporary files in `out`."""
    names = (SHARD_PREFIX, MANIFEST_FILE, f".{SHARD_PREFIX}", f".{MANIFEST_FILE}")
    return [f for f in out.iterdir() if f.is_file() and f.name.startswith(names)]


def open_output(out: Path, fresh: Manifest, overwrite: bool) -> Manifest:
    """The manifest to continue: the folder's own when it was written by the same settings over the same inputs
    (its shards whose file is missing or changed dropped, to be written again), else `fresh`. ConfigError when
    the folder holds other predictions, or shard files without a manifest, unless `overwrite` (which removes
    them, and nothing else in the folder)."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for f in _own_files(out):
            f.unlink()
        return fresh
    old = read_manifest(out)
    if old is None:
        strays = [f.name for f in _own_files(out) if f.name.startswith(SHARD_PREFIX)]
        if strays:
            raise ConfigError(
                f"{out} holds shard files ({strays[0]}, ...) but no {MANIFEST_FILE}: "
                "use another --out, or --overwrite to replace them"
            )
        return fresh
    check_resumable(old, fresh.settings, fresh.inputs, out)
    kept = {}
    for index, shard in old.shards.items():
        path = out / shard["file"]
        if path.is_file() and file_digest(path) == shard["sha256"]:
            kept[index] = shard
        else:
            log.warning("%s is missing or changed since it was written: writing it again", path)
    return Manifest(fresh.settings, fresh.inputs, kept, fresh.about)


@dataclass(frozen=True)
class BatchJob:
    """How to predict: the inputs, the output folder and format, and the batching."""

    sources: Sequence[str]
    files_from: Sequence[str | Path]
    out: Path
    format: str = "csv"
    shard_size: int = 10_000
    batch_size: int = 64
    workers: int = 2
    top_k: int = 1


def _expected_order(pending: list[int], plan: InputPlan, job: BatchJob) -> Iterator[tuple[int, int]]:
    for shard in pending:
        n = plan.shard_rows(shard, job.shard_size)
        for batch in range(-(-n // job.batch_size)):
            yield shard, batch


def decoded_batches(job: BatchJob, pending: list[int], size: int) -> Iterator[dict[str, Any]]:
    """The decoded batches of the shards `pending` (sorted), in input order, at `size` pixels a side: from
    `job.workers` DataLoader worker processes, 2 batches in flight each (0: decoded in this process)."""
    if not pending:  # every shard written already: nothing to enumerate again
        return
    from torch.utils.data import DataLoader

    dataset = DecodedBatches(
        job.sources, job.files_from, shard_size=job.shard_size, batch_size=job.batch_size,
        pending=frozenset(pending), size=size,
    )  # fmt: skip
    workers = job.workers
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None)
    yield from loader


class _ShardWriter:
    """Collects one shard's rows and writes it, with its manifest entry, when its last batch arrives."""

    def __init__(self, job: BatchJob, manifest: Manifest, plan: InputPlan, names: list[str]) -> None:
        self.job, self.manifest, self.plan, self.names = job, manifest, plan, names
        self.rows = ShardRows(names)
        self.written = 0

    def add(self, batch: dict[str, Any], predictor: Predictor, top_k: int) -> None:
        pixels = np.asarray(batch["pixels"])
        probs = predictor.predict_arrays(pixels, max(len(pixels), 1))
        rejected = predictor.rejected(pixels, probs) if predictor.rejector is not None else None
        i = 0
        for path, error in zip(batch["paths"], batch["errors"], strict=True):
            if error:
                self.rows.add_error(path, error)
                continue
            flag = None if rejected is None else bool(rejected[i])
            self.rows.add_prediction(path, top_classes(probs[i], predictor.classes, top_k), flag)
            i += 1

    def finish(self, shard: int) -> None:
        paths = self.rows.data["path"]
        digest = path_digest(paths)
        if len(paths) != self.plan.shard_rows(shard, self.job.shard_size) or digest != self.plan.shard_digests[shard]:
            raise DatasetError(
                f"the inputs changed while they were predicted (shard {shard} is not the paths counted at the "
                f"start): nothing of it was written; run the command again with --overwrite"
            )
        name = shard_file(shard, self.job.format)
        path = self.job.out / name
        write_shard(path, self.job.format, self.rows)
        self.manifest.shards[shard] = {
            "index": shard,
            "file": name,
            "rows": len(paths),
            "errors": self.rows.errors,
            "first": paths[0],
            "last": paths[-1],
            "inputs_sha256": digest,
            "sha256": file_digest(path),
        }
        self.manifest.write(self.job.out)
        self.written += 1
        self.rows = ShardRows(self.names)


def run_batches(predictor: Predictor, job: BatchJob, plan: InputPlan, manifest: Manifest) -> BatchSummary:
    """Predict the shards `manifest` does not list yet and write them (see the module notes).

    Raises DatasetError when the inputs change while they are predicted (the shards written so far stay valid),
    OSError from the disk, and what the predictor raises for a whole batch.
    """
    top_k = max(1, min(job.top_k, len(predictor.classes)))
    names = columns(top_k, predictor.rejector is not None)
    pending = [s for s in range(len(plan.shard_digests)) if s not in manifest.shards]
    resumed = len(plan.shard_digests) - len(pending)
    todo = sum(plan.shard_rows(s, job.shard_size) for s in pending)
    manifest.write(job.out)
    writer = _ShardWriter(job, manifest, plan, names)
    expected = _expected_order(pending, plan, job)
    start, done = time.perf_counter(), 0
    with progress.bar("predicting", total=todo) as (bar, task):
        for batch in decoded_batches(job, pending, predictor.data_config.storage_size):
            if (batch["shard"], batch["batch"]) != next(expected, None):
                raise RuntimeError(f"batch {batch['batch']} of shard {batch['shard']} arrived out of order")
            writer.add(batch, predictor, top_k)
            if batch["last"]:
                writer.finish(batch["shard"])
            done += len(batch["paths"])
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=len(batch["paths"]), info=f"{rate:,.0f} images/s")  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    if next(expected, None) is not None:
        raise DatasetError(
            "the inputs changed while they were predicted (fewer paths than counted at the start): "
            "run the command again with --overwrite"
        )
    shards = manifest.shards.values()
    return BatchSummary(
        out=job.out,
        format=job.format,
        inputs=plan.count,
        shards=len(plan.shard_digests),
        rows=sum(int(s["rows"]) for s in shards),
        errors=sum(int(s["errors"]) for s in shards),
        written_now=writer.written,
        predicted_now=done,
        resumed=resumed,
        seconds=seconds,
        skipped=dict(plan.skipped.most_common()),
        skipped_examples=list(plan.skipped_examples),
    )
