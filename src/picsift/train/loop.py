"""The standard training loop for registry backbones (torchvision/timm).

AdamW or SGD-nesterov, one-cycle or cosine by progress, label smoothing, early stopping,
checkpoint + resume, AMP and channels_last, seeded. The sampler and device come from outside so
the loop can run under torchrun later without a fork.
"""

from __future__ import annotations

import copy
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
from picsift.models import forward
from picsift.models.registry import ModelSpec, create_model
from picsift.runs import RunFolder
from picsift.train.data import TrainData, TrainedModel
from picsift.train.device import autocast, seed_everything
from picsift.train.schedule import Progress, lr_factor
from picsift.train.transforms import ArrayDataset, train_transform

log = logging.getLogger("picsift.train")
DEFAULT_LABEL_SMOOTHING = 0.1


def make_optimizer(model: nn.Module, cfg: TrainConfig, pretrained: bool) -> torch.optim.Optimizer:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    if cfg.optimizer == "sgd":
        lr = cfg.lr or (0.01 if pretrained else 0.1)
        wd = cfg.weight_decay if cfg.weight_decay is not None else 5e-4
        groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    lr = cfg.lr or (5e-4 if pretrained else 2e-3)
    wd = cfg.weight_decay if cfg.weight_decay is not None else 0.05
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


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
) -> TrainedModel:
    generator = seed_everything(cfg.seed)
    pretrained = bool(cfg.pretrained or cfg.weights)
    model = create_model(
        spec.name, len(data.classes), pretrained=cfg.pretrained, weights=cfg.weights, **cfg.model_params
    )
    model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dc = data.data_config
    batch_size = cfg.batch_size or 64
    train_ds = ArrayDataset(data.x_train, data.y_train, train_transform(dc, cfg.augment, cfg.random_erasing))
    smoothing = DEFAULT_LABEL_SMOOTHING if cfg.label_smoothing is None else cfg.label_smoothing
    extra: dict[str, Any] = {"label_smoothing": smoothing}
    if sampler is None and class_weights is None and cfg.balance != "none":
        from picsift.improve.balance import plan

        sampler_gen = torch.Generator().manual_seed(cfg.seed + 1)
        sampler, class_weights, decided = plan(data.y_train, cfg.balance, len(data.classes), sampler_gen)
        extra["balance"] = decided.to_dict()
    mix = batch_mix(cfg, len(data.classes))
    loader = torch.utils.data.DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train_ds) > batch_size,
        num_workers=cfg.num_workers,
        generator=generator,
        persistent_workers=cfg.num_workers > 0,
    )
    optimizer = make_optimizer(model, cfg, pretrained)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    weight = class_weights.to(device) if class_weights is not None else None
    criterion = nn.CrossEntropyLoss(label_smoothing=smoothing, weight=weight)
    epochs = cfg.epochs or (1000 if cfg.time_budget_min else 10)
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    start_epoch, best_acc, best_state, stale = 0, -1.0, None, 0
    if resume_from is not None:
        ckpt = torch.load(resume_from, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, best_acc, best_state = ckpt["epoch"] + 1, ckpt["best_acc"], ckpt.get("best_state")
        if start_epoch >= epochs:
            raise ConfigError(f"checkpoint already finished {start_epoch} epochs; ask for more with --epochs")
    tracker = Progress(epochs * max(1, len(loader)), budget_s, time.perf_counter())
    tracker.step = start_epoch * len(loader)
    history: list[dict[str, Any]] = []
    with progress.bar(f"training {spec.name}", total=epochs - start_epoch) as (bar, task):
        for epoch in range(start_epoch, epochs):
            model.train()
            t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            for xb, yb in loader:
                for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    g["lr"] = base * lr_factor(cfg.schedule, tracker.fraction(time.perf_counter()))
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                if cfg.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                target = yb
                if mix is not None:  # soft (N, K) targets; accuracy below still counts the hard labels
                    xb, target = mix(xb, yb)
                with autocast(device, cfg.amp):
                    logits = model(xb)
                    loss = criterion(logits.float(), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                tracker.step += 1
                seen += len(yb)
                loss_sum += float(loss.detach()) * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                if budget_s and tracker.done(time.perf_counter()):
                    break
            val_logits = predict_logits(model, data.x_val, dc, device, amp=cfg.amp)
            yv = torch.from_numpy(data.y_val)
            val_acc = float((val_logits.argmax(1) == yv).float().mean()) if len(yv) else float("nan")
            val_loss = float(nn.functional.cross_entropy(val_logits, yv)) if len(yv) else float("nan")
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "train_acc": correct / max(seen, 1),
                "val_loss": val_loss,
                "val_acc": val_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_s": time.perf_counter() - t0,
            }
            history.append(row)
            log_row(row)
            bar.update(task, advance=1, info=f"val acc {val_acc:.3f}")  # type: ignore[arg-type]
            score = val_acc if not np.isnan(val_acc) else -row["train_loss"]
            if score > best_acc:
                best_acc, stale = score, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            else:
                stale += 1
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "best_acc": best_acc,
                    "best_state": best_state,
                },
                RunFolder(run_dir).checkpoint_path,
            )
            if cfg.snapshots:  # the last N epochs' weights, for a snapshot ensemble (improve.snapshots)
                from picsift.runs.snapshots import save_snapshot

                save_snapshot(run_dir, model, epoch + 1, cfg.snapshots)
            if cfg.early_stopping and stale >= cfg.early_stopping:
                log.info("early stopping after %d epochs without improvement", stale)
                break
            if budget_s and tracker.done(time.perf_counter()):
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainedModel(
        model=model.cpu().to(memory_format=torch.contiguous_format),
        model_kwargs=dict(cfg.model_params),
        data_config=dc,
        history=history,
        extra=extra,
    )
