"""The fast recipe: picsift's default from-scratch training, sized to the data and to a time budget.

Data arrive as uint8 arrays (decoded once by the spine's cache) and stay uint8 on the training
device; batches are augmented and normalised as whole tensors (`augment`). The schedule is a
function of progress p = max(steps done / steps planned, time used / time budget), so a budgeted
run decays its learning rate on time, whatever speed the machine gives it, and stops at p = 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from picsift import progress
from picsift.config import TrainConfig
from picsift.errors import ConfigError
from picsift.models.fastcnn import FastCNN
from picsift.models.registry import ModelSpec, create_model
from picsift.runs import RunFolder
from picsift.train.data import TrainData, TrainedModel
from picsift.train.device import autocast, seed_everything
from picsift.train.fast.augment import BatchAugmenter
from picsift.train.fast.evaluate import logits_for, to_input
from picsift.train.fast.freeze import freeze_blocks, freeze_stages, frozen_at
from picsift.train.fast.optim import WeightAverage, apply_schedule, hyper_from, make_optimizers
from picsift.train.fast.params import param_float, param_int
from picsift.train.fast.prune import pruner_from
from picsift.train.fast.resize import resize_stages, shrink, size_at
from picsift.train.fast.runtime import cudnn_autotune, images_per_second, maybe_compile, thread_scope
from picsift.train.fast.sizing import (
    MONITOR_SHARE,
    budget_batch_size,
    cpu_batch_size,
    default_batch_size,
    default_epochs,
    model_kwargs_for,
    monitor_sample,
    probe_batch,
    widen_for_budget,
)

__all__ = ["fit_fast"]
log = logging.getLogger("picsift.train")
RECIPE_LABEL_SMOOTHING = 0.2


def _accuracy(logits: torch.Tensor, y: np.ndarray) -> float:
    return float((logits.argmax(1).numpy() == y).mean()) if len(y) else float("nan")


def fit_fast(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    log_row: Callable[[dict[str, Any]], None],
    run_dir: Path,
    resume_from: Path | None = None,
) -> TrainedModel:
    """Train the fast CNN on data.x_train; returns the model on CPU in eval mode with its kwargs."""
    t_start = time.perf_counter()
    params = dict(cfg.model_params)
    with thread_scope(device, params.get("threads")), cudnn_autotune(device):
        return _fit(spec, data, cfg, device, log_row, run_dir, resume_from, params, t_start)


def _build_model(
    spec: ModelSpec,
    num_classes: int,
    kwargs: dict[str, Any],
    whiten_from: torch.Tensor,
    device: torch.device,
    channels_last: bool,
    amp: bool,
) -> tuple[FastCNN, bool]:
    """The fast CNN with its whitening filters set from `whiten_from`, on the device; returns it and whether to
    train in bf16 (not on data whose patches have empty directions)."""
    model: FastCNN = create_model(spec.name, num_classes, **kwargs)
    degenerate = model.init_whitening(whiten_from)
    if degenerate and amp:
        # Grey or upscaled images leave patch directions empty; bf16 rounding then becomes signal that
        # near-constant channels' BatchNorm amplifies (measured: 1000x gradients on grey digits). Such
        # data are small and cheap, so they train in fp32.
        log.info("fastcnn: %d empty patch directions (grey or upscaled images): training in fp32", degenerate)
        amp = False
    model.to(device)
    return (model.to(memory_format=torch.channels_last) if channels_last else model), amp


def _fit(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    log_row: Callable[[dict[str, Any]], None],
    run_dir: Path,
    resume_from: Path | None,
    params: dict[str, Any],
    t_start: float,
) -> TrainedModel:
    generator = seed_everything(cfg.seed)
    dc = data.data_config
    n = len(data.y_train)
    if n == 0:
        raise ConfigError("fastcnn: no training images")
    if data.x_train.shape[1] != dc.input_size:
        raise ConfigError(
            f"fastcnn expects images stored at its input size {dc.input_size} (crop_pct=1.0), "
            f"got {data.x_train.shape[1]}"
        )
    hyper = hyper_from(params)
    lr_scale = cfg.lr / hyper.filter_lr if cfg.lr else 1.0
    smoothing = RECIPE_LABEL_SMOOTHING if cfg.label_smoothing is None else cfg.label_smoothing
    amp = cfg.amp and bool(params.get("amp", True))

    images = torch.from_numpy(data.x_train).permute(0, 3, 1, 2).to(device)
    labels = torch.from_numpy(data.y_train).to(device)
    # Whitening filters come from (un-augmented) training patches; up to 5,000 images are plenty.
    sample = images[torch.randperm(n, generator=generator)[:5000].to(device)]
    whiten_from = to_input(sample, dc, channels_last=False).float().cpu()
    budget_s = cfg.time_budget_min * 60.0 if cfg.time_budget_min else None
    ckpt = torch.load(resume_from, map_location=device, weights_only=False) if resume_from is not None else None
    kwargs = ckpt["model_kwargs"] if ckpt is not None else model_kwargs_for(n, dc.input_size, len(data.classes), params)
    model, amp = _build_model(spec, len(data.classes), kwargs, whiten_from, device, cfg.channels_last, amp)

    def probe(net: FastCNN) -> float:  # images the budget can train: throughput x the budget's share for training
        speed = images_per_second(net, dc.input_size, device, amp, cfg.channels_last, batch=probe_batch(device, n))
        return speed * (budget_s or 0.0) * 0.85

    images_in_budget = None
    if budget_s and ckpt is None:
        images_in_budget = probe(model)
        wider = widen_for_budget(kwargs, n, images_in_budget / n, params)
        if wider is not kwargs:
            log.info(
                "fastcnn: the budget holds ~%.0f passes over the data: widths %s", images_in_budget / n, wider["widths"]
            )
            kwargs = wider
            model, amp = _build_model(spec, len(data.classes), kwargs, whiten_from, device, cfg.channels_last, amp)
            images_in_budget = probe(model)
    if ckpt is not None:
        batch_size = int(ckpt["batch_size"])
    elif cfg.batch_size:
        batch_size = cfg.batch_size
    else:
        batch_size = cpu_batch_size(n) if device.type == "cpu" else default_batch_size(n)
        if images_in_budget:
            batch_size = budget_batch_size(n, images_in_budget, batch_size)
            log.info("fastcnn: ~%.0f images in the %.0fs budget, so batch %d", images_in_budget, budget_s, batch_size)
    aug = BatchAugmenter(
        images,
        labels,
        dc.mean,
        dc.std,
        batch_size=batch_size,
        generator=generator,
        translate=param_int(params, "translate", 2 if dc.input_size >= 24 else 1),
        jitter=param_float(params, "jitter", 0.0),
        channels_last=cfg.channels_last,
    )
    sgd, ortho = make_optimizers(model, hyper, aug.batch_size, lr_scale)
    steps_per_epoch = aug.steps_per_epoch()
    epochs = cfg.epochs or (10_000 if budget_s else default_epochs(steps_per_epoch))
    averager = WeightAverage(model) if params.get("lookahead", True) else None
    start_epoch, step, used_s = 0, 0, 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        sgd.load_state_dict(ckpt["sgd"])
        ortho.load_state_dict(ckpt["ortho"])
        if averager is not None and ckpt.get("slow") is not None:
            averager.slow = ckpt["slow"]
        start_epoch, step, used_s = ckpt["epoch"] + 1, ckpt["step"], ckpt["used_s"]
        if start_epoch >= epochs:
            raise ConfigError(f"checkpoint already finished {start_epoch} epochs; ask for more with --epochs")
    train_step = maybe_compile(model, device, params.get("compile", "auto"), budget_s)
    criterion = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none")
    stages = resize_stages(dc.input_size, params, budgeted=budget_s is not None)
    freezing, frozen = freeze_stages(params, len(model.blocks)), 0
    pruner = pruner_from(params, n, budgeted=budget_s is not None, generator=generator, device=device)
    if pruner is not None and ckpt is not None and ckpt.get("pruner") is not None:
        pruner.load_state_dict(ckpt["pruner"])
    # The budget covers everything fit_fast does: setup, training, per-epoch validation, the final pass.
    t0 = t_start - used_s
    t0_setup = time.perf_counter() - t_start
    eval_s: float | None = None  # measured cost of one validation pass, reserved for the final one
    overhead_s = 0.0  # time spent validating and checkpointing
    trained_images, trained_s, train_s_before = 0, 0.0, 0.0
    images_at: dict[str, int] = {}  # images trained per downscaled size
    n_val = len(data.y_val)
    # A budgeted run spends its time on training: epochs before the last validate on a fixed sample of
    # the validation split (the last epoch on all of it), so a large split does not eat the budget.
    peek = monitor_sample(n_val, cfg.seed) if budget_s else None
    history: list[dict[str, Any]] = []
    position = float(start_epoch)  # epochs done, fractional within an epoch
    skipped = 0  # image-epochs left out by pruning

    def fraction(now: float) -> float:
        p = position / epochs
        if budget_s:
            if eval_s is not None:
                reserve = eval_s
            else:  # a forward pass costs about a third of a training step; keep a margin
                per_image = trained_s / trained_images if trained_images else 0.0
                reserve = max(0.02 * budget_s, 0.35 * n_val * per_image)
            p = max(p, (now - t0) / max(1e-3, budget_s - reserve))
        return min(p, 1.0)

    log.info(
        "fastcnn %s: %d images at %dpx, batch %d, %s, widths %s, setup %.1fs",
        device,
        n,
        dc.input_size,
        aug.batch_size,
        f"budget {budget_s:.0f}s" if budget_s else f"{epochs} epochs",
        kwargs["widths"],
        t0_setup,
    )
    done = False
    with progress.bar(f"training {spec.name}", total=None if budget_s else epochs - start_epoch) as (bar, task):
        for epoch in range(start_epoch, epochs):
            model.train()
            te, seen = time.perf_counter(), 0
            # Running sums stay on the device: no host sync per step on a GPU.
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            subset = pruner.plan(fraction(time.perf_counter())) if pruner is not None else None
            n_batches = aug.steps_per_epoch(subset)
            skipped += 0 if subset is None else n - len(subset)
            for i, (xb, yb, idx) in enumerate(aug.epoch(epoch, subset)):
                p = fraction(time.perf_counter())
                if p >= 1.0:
                    done = True
                    break
                whiten_bias = apply_schedule(sgd, ortho, p, hyper)
                size = size_at(stages, p, dc.input_size)
                if freezing and frozen_at(freezing, p) > frozen:  # freezing only ever grows
                    frozen = frozen_at(freezing, p)
                    freeze_blocks(model, frozen)
                if size != dc.input_size:
                    xb = shrink(xb, size)
                    images_at[str(size)] = images_at.get(str(size), 0) + len(yb)
                with autocast(device, amp):
                    logits = train_step(xb, whiten_bias)
                losses = criterion(logits.float(), yb)
                loss = pruner.weigh(idx, losses) if pruner is not None else losses.sum()
                loss.backward()
                sgd.step()
                ortho.step()
                model.zero_grad(set_to_none=True)
                step += 1
                position = epoch + (i + 1) / n_batches
                trained_images += len(yb)
                trained_s = train_s_before + time.perf_counter() - te
                if averager is not None and step % averager.every == 0:
                    averager.update(model, fraction(time.perf_counter()))
                seen += len(yb)
                loss_sum += loss.detach()
                correct += (logits.detach().argmax(1) == yb).sum()
            if epoch + 1 >= epochs or fraction(time.perf_counter()) >= 1.0:
                done = True
            if done and averager is not None:
                averager.update(model, 1.0, final=True)
            train_s = time.perf_counter() - te
            train_s_before += train_s
            tv = time.perf_counter()
            # Under a budget, validation and checkpoints may take at most MONITOR_SHARE of the training time
            # so far (tiny sets train an epoch faster than they validate); the last epoch always validates.
            check = done or not budget_s or overhead_s <= MONITOR_SHARE * train_s_before
            val_acc, n_watched = None, 0
            if check:
                watch = None if done else peek
                x_val, y_val = (data.x_val, data.y_val) if watch is None else (data.x_val[watch], data.y_val[watch])
                val_logits = logits_for(model, x_val, dc, device, amp=amp)
                eval_s = (time.perf_counter() - tv) * 1.2 * n_val / max(1, len(y_val))  # the final pass sees all
                val_acc, n_watched = _accuracy(val_logits, y_val), len(y_val)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(loss_sum) / max(seen, 1),
                "train_acc": int(correct) / max(seen, 1),
                "val_acc": val_acc,
                "lr": ortho.param_groups[0]["lr"] if ortho.param_groups else 0.0,
                "epoch_s": time.perf_counter() - te,
                "train_s": train_s,
                "elapsed_s": time.perf_counter() - t0,
                "images": seen,
                "val_images": n_watched,
            }
            history.append(row)
            log_row(row)
            if val_acc is not None:
                bar.update(task, info=f"val acc {val_acc:.3f}")  # type: ignore[arg-type]
            bar.update(task, advance=1)  # type: ignore[arg-type]
            if check:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "sgd": sgd.state_dict(),
                        "ortho": ortho.state_dict(),
                        "slow": averager.slow if averager else None,
                        "pruner": pruner.state_dict() if pruner else None,
                        "epoch": epoch,
                        "step": step,
                        "used_s": time.perf_counter() - t0,
                        "batch_size": aug.batch_size,
                        "model_kwargs": kwargs,
                    },
                    RunFolder(run_dir).checkpoint_path,
                )
            overhead_s += time.perf_counter() - tv
            if cfg.snapshots:  # the last N epochs' weights, for a snapshot ensemble (improve.snapshots)
                from picsift.runs.snapshots import save_snapshot

                save_snapshot(run_dir, model, epoch + 1, cfg.snapshots)
            if done:
                break
    model.eval()
    model = model.cpu().to(memory_format=torch.contiguous_format)
    extra = {
        "recipe": "fast",
        "batch_size": aug.batch_size,
        "steps": step,
        "label_smoothing": smoothing,
        "low_res": {"stages": stages, "images": images_at},
        "freeze": {"stages": freezing, "frozen_blocks": frozen} if freezing else None,
        "prune": {"ratio": pruner.ratio, "until": pruner.until, "skipped": skipped} if pruner else None,
        "elapsed_s": time.perf_counter() - t_start,
        "budget_s": budget_s,
    }
    # The recipe returns its last (averaged) weights, not its best epoch's: report what was kept.
    final = history[-1]["val_acc"] if history and n_val else None
    return TrainedModel(
        model=model, model_kwargs=kwargs, data_config=dc, history=history, extra=extra, final_val_acc=final
    )
