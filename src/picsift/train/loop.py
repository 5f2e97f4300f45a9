"""The standard training loop for registry backbones (torchvision/timm).

AdamW or SGD-nesterov, one-cycle or cosine by progress, label smoothing, early stopping,
checkpoint + resume, AMP and channels_last, seeded. The sampler and device come from outside.

Under torchrun (`dist`, picsift.distributed) the model trains in DistributedDataParallel: each process takes its
shard of every epoch (DistributedSampler, or `ShardedSampler` over the balanced sampler) at `--batch-size` images
per process, validation is split across the processes and summed, and decisions on the clock (the time budget)
are agreed each step. Only rank 0 checkpoints.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from picsift import progress
from picsift.config import TrainConfig
from picsift.device import autocast, seed_everything
from picsift.distributed import SINGLE, Dist
from picsift.errors import ConfigError
from picsift.models import forward
from picsift.models.registry import ModelSpec, create_model
from picsift.runs import RunFolder
from picsift.train.checkpoints import load_checkpoint, save_checkpoint
from picsift.train.data import TrainData, TrainedModel
from picsift.train.schedule import Progress, lr_factor
from picsift.train.shards import ShardedSampler
from picsift.train.standard_recipe import StandardRecipe
from picsift.train.transforms import ArrayDataset, train_transform

log = logging.getLogger("picsift.train")


def make_optimizer(model: nn.Module, recipe: StandardRecipe) -> torch.optim.Optimizer:
    """AdamW or SGD-Nesterov at the recipe's peak rate; weight decay on weights of 2+ dimensions only."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.lr)


def predict_logits(
    model: nn.Module, x: np.ndarray, data_config: Any, device: torch.device, batch_size: int = 256, amp: bool = True
) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> logits (N, K) on CPU, float32 (picsift.models.forward)."""
    return forward.logits(model, x, data_config, device, batch_size=batch_size, amp=amp)


def batch_mix(cfg: TrainConfig, num_classes: int) -> Callable[..., Any] | None:
    """MixUp / CutMix on whole batches (cfg.mixup / cfg.cutmix are Beta(alpha, alpha) parameters).

    With both on, each batch gets one of the two at random, as in timm's and torchvision's references.
    """
    from torchvision.transforms import v2

    mixes: list[Any] = []
    if cfg.mixup > 0:
        mixes.append(v2.MixUp(alpha=cfg.mixup, num_classes=num_classes))
    if cfg.cutmix > 0:
        mixes.append(v2.CutMix(alpha=cfg.cutmix, num_classes=num_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


@dataclass
class LoopState:
    """What changes while the standard loop trains: the best epoch so far and the schedule's progress."""

    tracker: Progress  # steps done and time used: the schedule's progress
    start_epoch: int = 0
    best_acc: float = -1.0  # the best epoch's validation accuracy (minus its train loss without validation images)
    best_state: dict[str, torch.Tensor] | None = None  # its weights, on the CPU
    best_epoch: int | None = None  # its number (history's "epoch"), earlier sessions of a resumed run included
    stale: int = 0  # epochs since the best one
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Training:
    """The standard loop's fixed parts: model, batches, optimiser, loss and schedule."""

    model: nn.Module  # what trains: `net`, in DistributedDataParallel under torchrun
    net: nn.Module  # the network itself: validated, checkpointed and returned
    dist: Dist
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    criterion: nn.CrossEntropyLoss
    mix: Callable[..., Any] | None  # MixUp / CutMix, or None
    recipe: StandardRecipe
    cfg: TrainConfig
    device: torch.device


def fit_standard(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    log_row: Callable[[dict[str, Any]], None],
    run_dir: Path,
    resume_from: Path | None = None,
    sampler: torch.utils.data.Sampler | None = None,
    class_weights: torch.Tensor | None = None,
    dist: Dist = SINGLE,
) -> TrainedModel:
    """Train a torchvision/timm backbone on uint8 (N, S, S, 3) arrays with the recipe from `cfg`; one history row
    per epoch goes to `log_row`, a checkpoint (and snapshots) to `run_dir`. Returns the best epoch's model (by
    validation accuracy) on the CPU in eval mode. With `dist`, one process of several: its shard of each epoch,
    gradients averaged over the processes; only rank 0 writes into `run_dir`. Raises ConfigError for any
    cfg.model_params key and for a checkpoint that already finished the epochs asked for."""
    recipe = StandardRecipe.from_config(spec.name, cfg, world_size=dist.world_size)
    generator = seed_everything(cfg.seed)
    model = _create(spec, len(data.classes), cfg, dist)
    model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    extra: dict[str, Any] = {"label_smoothing": recipe.label_smoothing, "batch_size": recipe.batch_size}
    if dist.enabled:
        extra["global_batch_size"] = recipe.batch_size * dist.world_size
    if sampler is None and class_weights is None and cfg.balance != "none":
        from picsift.train.balance import plan

        sampler_gen = torch.Generator().manual_seed(cfg.seed + 1)
        sampler, class_weights, decided = plan(data.y_train, cfg.balance, len(data.classes), sampler_gen)
        extra["balance"] = decided.to_dict()
    training = _set_up(model, data, cfg, recipe, device, generator, sampler, class_weights, dist)
    ckpt = load_checkpoint(resume_from, map_location=device) if resume_from is not None else None
    state = LoopState(Progress(recipe.epochs * max(1, len(training.loader)), recipe.budget_s, time.perf_counter()))
    if ckpt is not None:
        _restore(training, state, ckpt)
    with progress.bar(f"training {spec.name}", total=recipe.epochs - state.start_epoch) as (bar, task):
        for epoch in range(state.start_epoch, recipe.epochs):
            if isinstance(training.loader.sampler, torch.utils.data.DistributedSampler):
                training.loader.sampler.set_epoch(epoch)
            row = _train_epoch(training, state, epoch, data)
            state.history.append(row)
            log_row(row)
            info = (
                f"val acc {row['val_acc']:.3f}" if row["val_acc"] is not None else f"train loss {row['train_loss']:.3f}"
            )
            bar.update(task, advance=1, info=info)  # type: ignore[arg-type]
            _keep_best(training, state, row)
            if dist.is_main:
                _checkpoint(training, state, epoch, RunFolder(run_dir).checkpoint_path)
            if (
                cfg.snapshots and dist.is_main
            ):  # the last N epochs' weights, for a snapshot ensemble (improve.snapshots)
                from picsift.runs.snapshots import save_snapshot

                save_snapshot(run_dir, model, epoch + 1, cfg.snapshots)
            if _should_stop(training, state):
                break
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return TrainedModel(
        model=model.cpu().to(memory_format=torch.contiguous_format),
        model_kwargs=dict(cfg.model_params),
        data_config=data.data_config,
        history=state.history,
        extra=extra,
        # The best epoch's weights were restored: its accuracy (a resumed run's best may be from before the
        # resume, so not in this session's history); without validation images best_acc is minus a train loss.
        val_acc=state.best_acc if len(data.y_val) and state.best_state is not None else None,
        kept_epoch=state.best_epoch,
    )


def _create(spec: ModelSpec, num_classes: int, cfg: TrainConfig, dist: Dist) -> nn.Module:
    """The backbone with a `num_classes` head; in several processes rank 0 builds it first, so that pretrained
    weights are fetched once and the others find them in the cache."""
    if not dist.is_main:
        dist.barrier()
    model = create_model(spec.name, num_classes, pretrained=cfg.pretrained, weights=cfg.weights)
    if dist.enabled and dist.is_main:
        dist.barrier()
    return model


def _set_up(
    model: nn.Module,
    data: TrainData,
    cfg: TrainConfig,
    recipe: StandardRecipe,
    device: torch.device,
    generator: torch.Generator,
    sampler: torch.utils.data.Sampler | None,
    class_weights: torch.Tensor | None,
    dist: Dist = SINGLE,
) -> _Training:
    """The training batches (shuffled, or drawn by `sampler`; this process's shard of them under torchrun), the
    optimiser and the (class-weighted) loss."""
    dc = data.data_config
    train_ds = ArrayDataset(data.x_train, data.y_train, train_transform(dc, cfg.augment, cfg.random_erasing))
    mix = batch_mix(cfg, len(data.classes))
    if dist.enabled:
        if sampler is None:
            sampler = torch.utils.data.DistributedSampler(
                train_ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=cfg.seed, drop_last=True
            )
        else:
            sampler = ShardedSampler(sampler, dist.rank, dist.world_size)
        torch.manual_seed(cfg.seed + dist.rank)  # each process its own augmentation draws (the weights are rank 0's)
    images = len(sampler) if sampler is not None else len(train_ds)  # type: ignore[arg-type]
    net, model = model, dist.wrap(model)
    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=recipe.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=images > recipe.batch_size,
        num_workers=cfg.num_workers,
        generator=generator,
        persistent_workers=cfg.num_workers > 0,
    )
    optimizer = make_optimizer(net, recipe)
    weight = class_weights.to(device) if class_weights is not None else None
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, weight=weight)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    return _Training(model, net, dist, loader, optimizer, base_lrs, criterion, mix, recipe, cfg, device)


def _restore(training: _Training, state: LoopState, ckpt: dict[str, Any]) -> None:
    """Continue from a checkpoint: weights, optimiser state, the best epoch so far and the schedule's step."""
    training.net.load_state_dict(ckpt["model"])
    training.optimizer.load_state_dict(ckpt["optimizer"])
    state.start_epoch, state.best_acc, state.best_state = ckpt["epoch"] + 1, ckpt["best_acc"], ckpt.get("best_state")
    state.best_epoch = ckpt.get("best_epoch")
    if state.start_epoch >= training.recipe.epochs:
        raise ConfigError(f"checkpoint already finished {state.start_epoch} epochs; ask for more with --epochs")
    state.tracker.step = state.start_epoch * len(training.loader)


def _train_epoch(training: _Training, state: LoopState, epoch: int, data: TrainData) -> dict[str, Any]:
    """One pass over the loader (cut short when a time budget runs out), then validation; returns its row."""
    model, optimizer, cfg, device = training.model, training.optimizer, training.cfg, training.device
    model.train()
    t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
    for xb, yb in training.loader:
        p = _progress(training, state)
        for g, base in zip(optimizer.param_groups, training.base_lrs, strict=True):
            g["lr"] = base * lr_factor(cfg.schedule, p)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        if cfg.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        target = yb
        if training.mix is not None:  # soft (N, K) targets; accuracy below still counts the hard labels
            xb, target = training.mix(xb, yb)
        with autocast(device, cfg.amp):
            logits = model(xb)
            loss = training.criterion(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.tracker.step += 1
        seen += len(yb)
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        if training.recipe.budget_s and _progress(training, state) >= 1.0:
            break
    training.dist.sync_buffers(training.net)  # rank 0's BatchNorm statistics, for validation and the result
    val_loss, val_acc = _validate(training, data)
    images, loss_sum, right = training.dist.sum([seen, loss_sum, correct])  # over every process's shard
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(images, 1),
        "train_acc": right / max(images, 1),
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": optimizer.param_groups[0]["lr"],
        "epoch_s": time.perf_counter() - t0,
    }


def _progress(training: _Training, state: LoopState) -> float:
    """The schedule's progress now; under a time budget in several processes, the furthest any process is (each
    reads its own clock), so all take the same learning rate and stop at the same step."""
    p = state.tracker.fraction(time.perf_counter())
    return training.dist.agree_max(p) if training.recipe.budget_s else p


def _validate(training: _Training, data: TrainData) -> tuple[float | None, float | None]:
    """(loss, accuracy) on the validation images, each process scoring its share and the counts summed; (None,
    None) without any."""
    mine = training.dist.shard()
    val_logits = predict_logits(training.net, data.x_val[mine], data.data_config, training.device, amp=training.cfg.amp)
    yv = torch.from_numpy(data.y_val[mine])
    correct = float((val_logits.argmax(1) == yv).sum()) if len(yv) else 0.0
    loss_sum = float(nn.functional.cross_entropy(val_logits, yv, reduction="sum")) if len(yv) else 0.0
    correct, loss_sum = training.dist.sum([correct, loss_sum])
    # No validation images: accuracy and loss are not measured (None, null in metrics.jsonl), not NaN.
    n = len(data.y_val)
    return (loss_sum / n, correct / n) if n else (None, None)


def _keep_best(training: _Training, state: LoopState, row: dict[str, Any]) -> None:
    """Keep a copy of the weights of the best epoch so far (by validation accuracy, else by train loss)."""
    score = row["val_acc"] if row["val_acc"] is not None else -row["train_loss"]
    if score > state.best_acc:
        state.best_acc, state.best_epoch, state.stale = score, row["epoch"], 0
        state.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in training.net.state_dict().items()})
    else:
        state.stale += 1


def _checkpoint(training: _Training, state: LoopState, epoch: int, path: Path) -> None:
    """What `--resume` needs: weights, optimiser state, the epoch done and the best epoch so far."""
    save_checkpoint(
        {
            "model": training.net.state_dict(),
            "optimizer": training.optimizer.state_dict(),
            "epoch": epoch,
            "best_acc": state.best_acc,
            "best_state": state.best_state,
            "best_epoch": state.best_epoch,
        },
        path,
    )


def _should_stop(training: _Training, state: LoopState) -> bool:
    """Early stopping (cfg.early_stopping epochs without a better one: every process sees the same summed
    validation) or the time budget spent (agreed)."""
    patience = training.cfg.early_stopping
    if patience and state.stale >= patience:
        log.info("early stopping after %d epochs without improvement", state.stale)
        return True
    return bool(training.recipe.budget_s and _progress(training, state) >= 1.0)
