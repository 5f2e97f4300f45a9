"""The transfer recipe: pretrained backbone -> cached embeddings -> linear probe -> fine-tuning, in one budget.

1. Load the ImageNet weights offline (`picsift.models.pretrained`; a clear error saying how to get them when they
   are absent: never random weights).
2. Embed the training and validation images at the run's resolution (ONNX Runtime on a CPU, ~3x eager), cached
   in the workspace's feature store by (backbone, weights, data config, image sha256).
3. Fit the linear probe (standardised features + logistic regression, seconds) and fold it into the model's
   classifier: a plain torch model that predicts what the probe predicts.
4. Fine-tune for what the budget leaves (`finetune.py`), keeping the best validation epoch, and never one worse
   than the probe; under torchrun in every process (DistributedDataParallel), steps 2-3 on rank 0 alone.
The whole call (loading, embedding, probe, fine-tuning, the final validation) fits `--time-budget`, leaving time
for the calibration pass the train pipeline runs afterwards (temperature scaling, Guo et al., "On Calibration of
Modern Neural Networks", ICML 2017: `picsift.improve.calibration`). The order, a linear probe then fine-tuning,
is LP-FT (Kumar et al., ICLR 2022; see `probe`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from picsift.config import TrainConfig
from picsift.device import seed_everything
from picsift.distributed import SINGLE, Dist, per_process_batch
from picsift.models.registry import ModelSpec
from picsift.store import Workspace
from picsift.train.data import TrainData, TrainedModel
from picsift.train.fast.runtime import thread_scope
from picsift.train.transfer.embeddings import cache_key, cached_embeddings
from picsift.train.transfer.finetune import MIN_GAIN_OVER_START, FinetuneBudget, finetune
from picsift.train.transfer.plan import embed_rate
from picsift.train.transfer.probe import fit_probe, fold_into
from picsift.train.transfer.recipe import TransferRecipe

log = logging.getLogger("picsift.train")
DEFAULT_EPOCHS = 3  # fine-tuning epochs without a time budget
EAGER_SLOWDOWN = 3.0  # fp32 eager PyTorch (the predictor's calibration pass) vs ONNX Runtime (embed_bench: 3.1x)
BF16_SLOWDOWN = 1.5  # bf16 eager (validation during fine-tuning) vs ONNX Runtime (embed_bench: 3.1x / 2.7x, rounded up)
RATE_SAMPLE = 32  # images timed to measure the embedding rate when every embedding came from the cache
MIN_FINETUNE_S = 10.0  # fine-tuning that the budget leaves less time for (beyond its validation) is skipped


def with_train_settings(recipe: TransferRecipe, cfg: TrainConfig) -> TransferRecipe:
    """The recipe with TrainConfig's own settings applied: --epochs, --batch-size, --lr (the head's rate scales
    with it), --weight-decay, --label-smoothing, and --amp (off when either turns it off)."""
    lr = cfg.lr or recipe.lr
    return dataclasses.replace(
        recipe,
        epochs=cfg.epochs or recipe.epochs,
        batch_size=cfg.batch_size or recipe.batch_size,
        lr=lr,
        head_lr=recipe.head_lr * lr / recipe.lr,
        weight_decay=recipe.weight_decay if cfg.weight_decay is None else cfg.weight_decay,
        label_smoothing=recipe.label_smoothing if cfg.label_smoothing is None else cfg.label_smoothing,
        amp=recipe.amp and cfg.amp,
    )


def probe_leaves_no_room(probe_val_acc: float | None, n_val: int) -> str | None:
    """Why fine-tuning cannot help when the probe misses fewer than MIN_GAIN_OVER_START of the `n_val` validation
    images (no epoch could then be kept, `finetune.replaces_best`); None when it can, or without validation."""
    if probe_val_acc is None or n_val == 0:
        return None
    wrong = round((1.0 - probe_val_acc) * n_val)
    if wrong >= MIN_GAIN_OVER_START:
        return None
    if wrong == 0:
        return f"the probe gets all {n_val} validation images right"
    return (
        f"the probe gets {n_val - wrong} of {n_val} validation images right: no epoch could beat it by "
        f"{MIN_GAIN_OVER_START} images"
    )


def content_keys(ws: Workspace, ids: list[int], x: np.ndarray) -> list[str]:
    """The catalog's sha256 of each image id (rows of x, uint8 (N, H, W, 3)), one string per row; when the ids do
    not cover x or an id is not in the catalog, every row is keyed "pixels:<sha256 of its decoded bytes>"."""
    if len(ids) == len(x) and ids:
        rows = {r.id: r.sha256 for r in ws.catalog.images(ids=ids, readable=None, include_excluded=True)}
        if all(i in rows for i in ids):
            return [rows[i] for i in ids]
    return ["pixels:" + hashlib.sha256(img.tobytes()).hexdigest() for img in x]


@dataclass
class _ProbePhase:
    """What rank 0's first phase (embedding, the probe) hands every process: the probe's history row, the folded
    classifier's weights, what was done, and the seconds the call had used when the phase ended."""

    row: dict[str, Any]
    head: dict[str, torch.Tensor]
    probe: dict[str, Any]
    probe_val_acc: float | None
    embed: dict[str, Any]
    rate: float  # images per second of an embedding pass (measured, else estimated)
    load_s: float
    elapsed_s: float


def _timed_rate(embedder: Any, x: np.ndarray, n: int = RATE_SAMPLE) -> float | None:
    """Images per second of `embedder` on up to `n` of the images `x` ((N, S, S, 3) uint8), after one warm-up
    call; None without images. The fine-tuning plan needs the rate when every embedding came from the cache: the
    planner's prior (`plan.embed_rate`) is a busy machine's figure, and on a quiet one it was 13x too slow, which
    left "no time" for fine-tuning on a repeated run."""
    if not len(x):
        return None
    embedder(x[:1])
    sample = x[:n]
    t = time.perf_counter()
    embedder(sample)
    seconds = time.perf_counter() - t
    return len(sample) / seconds if seconds > 0 else None


def _probe_phase(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    ws: Workspace,
    model: torch.nn.Module,
    found: Any,
    recipe: TransferRecipe,
    device: torch.device,
    t_start: float,
) -> _ProbePhase:
    """Embed the train and validation images (cached in the workspace's feature store), fit the linear probe and
    fold it into `model`'s new classifier."""
    from picsift.models.pretrained import make_embedder

    dc = data.data_config
    embedder = make_embedder(model, dc, backend=recipe.embed_backend, device=device)
    load_s = time.perf_counter() - t_start
    key = cache_key(spec.name, found, dc)
    f_train, st_train = cached_embeddings(
        ws, key, content_keys(ws, data.train_ids, data.x_train), data.x_train, embedder, "embedding train images"
    )
    f_val, st_val = cached_embeddings(
        ws, key, content_keys(ws, data.val_ids, data.x_val), data.x_val, embedder, "embedding val images"
    )
    embed_s = st_train.seconds + st_val.seconds
    measured = (st_train.computed + st_val.computed) / embed_s if embed_s > 0 and st_train.computed else None
    timed = None if measured else _timed_rate(embedder, data.x_val if len(data.x_val) else data.x_train)
    rate = measured or timed or embed_rate(dc.input_size, device, spec.name)
    rate_source = "this run's embedding" if measured else "a timed sample" if timed else "the planner's estimate"
    tp = time.perf_counter()
    probe = fit_probe(f_train, data.y_train, f_val, data.y_val, len(data.classes), recipe.probe_c, cfg.seed)
    row = {
        "epoch": 0,
        "phase": "probe",
        "train_acc": probe.train_acc,
        "val_acc": probe.val_acc,
        "val_loss": probe.val_nll,
        "epoch_s": time.perf_counter() - tp,
    }
    model.reset_classifier(len(data.classes))  # type: ignore[operator]
    fold_into(model.get_classifier(), probe)  # type: ignore[operator]
    head = {k: v.detach().cpu().clone() for k, v in model.get_classifier().state_dict().items()}  # type: ignore[operator]
    embed = {
        "backend": embedder.backend,
        "computed": st_train.computed + st_val.computed,
        "cached": st_train.cached + st_val.cached,
        "seconds": embed_s,
        "images_per_s": measured,
        "planning_rate": {"images_per_s": rate, "from": rate_source},
    }
    return _ProbePhase(row, head, probe.to_dict(), probe.val_acc, embed, rate, load_s, time.perf_counter() - t_start)


def fit_transfer(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    ws: Workspace,
    log_row: Callable[[dict[str, Any]], None],
    reserve_s: float = 0.0,
    dist: Dist = SINGLE,
) -> TrainedModel:
    """Train `spec` (family "transfer") on `data` with the transfer recipe (module docstring); one history row
    for the probe (epoch 0) and one per fine-tuning epoch go to `log_row`. `reserve_s`: seconds of the budget
    left for work after the fit besides the calibration pass (which is reserved here). Returns the model on the
    CPU in eval mode (its architecture rebuilt by `create_model(spec.name, K)`), with what was done in `extra`.
    With `dist` (torchrun), rank 0 embeds and fits the probe alone (the embeddings are cached in the workspace,
    which only rank 0 writes; the probe takes seconds), hands the folded head to every process, and all of them
    fine-tune in DistributedDataParallel. Raises WeightsNotAvailableError (how to get the weights) when the
    backbone's weights are not on the machine, ConfigError for a model_params key the recipe does not take."""
    from picsift.models.pretrained import create_pretrained_backbone

    t_start = time.perf_counter()
    recipe = with_train_settings(TransferRecipe.from_params(cfg.model_params), cfg)
    if dist.enabled and not cfg.batch_size and "batch_size" not in cfg.model_params:
        # A batch given is per process; the recipe's own is the one-process batch, split over the processes.
        recipe = dataclasses.replace(recipe, batch_size=per_process_batch(recipe.batch_size, dist.world_size))
    device = dist.train_device(cfg.device)
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    dc = data.data_config
    seed_everything(cfg.seed)
    with thread_scope(device, recipe.threads, dist.local_world_size):
        model, _native, found = create_pretrained_backbone(spec.name, num_classes=0, weights=cfg.weights)
        phase = dist.share(lambda: _probe_phase(spec, data, cfg, ws, model, found, recipe, device, t_start))
        t_start = time.perf_counter() - phase.elapsed_s  # every process counts the budget from rank 0's start
        if not dist.is_main:
            model.reset_classifier(len(data.classes))  # type: ignore[operator]
            model.get_classifier().load_state_dict(phase.head)  # type: ignore[operator]
        log_row(phase.row)
        model = model.to(device).to(memory_format=torch.channels_last)
        n_val = len(data.y_val)
        val_cost = n_val / dist.world_size * BF16_SLOWDOWN / phase.rate  # each process validates its share
        reserve = reserve_s + 1.0 + n_val * EAGER_SLOWDOWN / phase.rate  # saving + the calibration pass (fp32 eager)
        deadline = t_start + budget_s - reserve if budget_s else None
        history = [phase.row]
        ft_info: dict[str, Any] = {"ran": False}
        kept_acc, kept_epoch = phase.probe_val_acc, 0  # the probe, unless fine-tuning replaces it
        epochs = recipe.epochs or (None if budget_s else DEFAULT_EPOCHS)
        left = deadline - time.perf_counter() - val_cost if deadline is not None else None
        if not recipe.finetune:
            ft_info["skipped"] = "finetune: false"
        elif (no_room := probe_leaves_no_room(phase.probe_val_acc, n_val)) is not None:
            ft_info["skipped"] = no_room
        elif left is not None and dist.agree_min(left) < MIN_FINETUNE_S:
            ft_info["skipped"] = (
                f"the budget leaves {max(left, 0):.0f} s after the probe (under {MIN_FINETUNE_S:.0f} s)"
            )
        else:
            ft = finetune(
                model,
                data,
                cfg,
                recipe,
                device,
                FinetuneBudget(epochs, deadline, val_cost),
                phase.probe_val_acc,
                log_row,
                dist=dist,
            )
            history += ft.history
            kept_epoch = ft.best_epoch
            if n_val:  # the kept weights' accuracy: a fine-tuned epoch's only when it replaced the probe
                kept_acc = ft.best_acc
            ft_info = {
                "ran": True,
                "epochs": len(ft.history),
                "steps": ft.steps,
                "images": ft.images,
                "seconds": ft.seconds,
                "stopped": ft.stopped,
                "best_epoch": ft.best_epoch,
                "train_stages": ft.train_stages,
            }
    kept = (
        "probe" if not ft_info.get("ran") or ft_info["best_epoch"] == 0 else f"finetune epoch {ft_info['best_epoch']}"
    )
    model = model.eval().cpu().to(memory_format=torch.contiguous_format)
    extra = {
        "recipe": "transfer",
        "backbone": spec.name,
        "weights": found.to_dict(),
        "resolution": dc.input_size,
        "kept": kept,
        "phases": {
            "load_s": phase.load_s,
            "embed": phase.embed,
            "probe": phase.probe,
            "finetune": ft_info,
        },
        "settings": dataclasses.asdict(recipe),
        "budget_s": budget_s,
        "elapsed_s": time.perf_counter() - t_start,
    }
    log.info("transfer %s at %d px: kept %s", spec.name, dc.input_size, kept)
    return TrainedModel(
        model=model,
        model_kwargs={},
        data_config=dc,
        history=history,
        extra=extra,
        val_acc=kept_acc if n_val else None,
        kept_epoch=kept_epoch,
    )
