"""Fine-tuning a pretrained EfficientNet from its probe-initialised head, for what the budget leaves.

AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) with discriminative learning rates
(Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification" (ULMFiT), ACL 2018: the classifier fastest, then the last stage and the head convolution,
each stage further down `lr_decay` times slower; the stem and the first stages frozen on a CPU), linear warm-up
then cosine decay (Loshchilov & Hutter, SGDR, ICLR 2017, without restarts) over progress = max(steps done / planned, time used / time given), random resized crops and
flips, bf16 autocast (CPUs with native bf16; fp16/bf16 on GPUs) and channels_last. BatchNorm layers keep their
ImageNet statistics (eval mode): the probe was fitted on features computed with them, and batches of 32 photos
would give noisy ones. The best validation epoch is kept, and only when it beats what the run started from
(the probe's validation accuracy) by MIN_GAIN_OVER_START images, so fine-tuning never makes a run worse on
validation and one lucky image does not replace the probe.

Under torchrun (`dist`) each process trains its shard of every epoch (DistributedSampler, `--batch-size` images per
process) in DistributedDataParallel; the decisions on the clock (learning rate by progress, stopping before the
deadline) are agreed each step, and validation is split across the processes and summed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from picsift import progress
from picsift.config import TrainConfig
from picsift.device import autocast
from picsift.distributed import SINGLE, Dist
from picsift.models.registry import DataConfig
from picsift.train.transfer.recipe import TransferRecipe
from picsift.train.transforms import ArrayDataset, train_transform

log = logging.getLogger("picsift.train")
CPU_TRAIN_STAGES = 3
MIN_STEPS = 4  # an epoch cut shorter than this by the budget is not started
# Validation images an epoch must get right beyond the starting point (the probe) to replace it. One image is noise
# on a small validation set, and the best of many epochs is picked: on an H200, 85 epochs of hymenoptera fine-tuning
# kept one right on 24 of 24 held-out photos against the probe's 23, and scored 94.8% on the test photos against the
# probe's 96.1% (bench/results/gpu_bench.json). Later epochs replace the best one when better by one image.
MIN_GAIN_OVER_START = 2


def freeze_and_group(
    model: nn.Module, recipe: TransferRecipe, lr: float, head_lr: float, train_stages: int
) -> list[dict[str, Any]]:
    """AdamW parameter groups for a timm EfficientNet (conv_stem, bn1, blocks[0..S-1], conv_head, bn2,
    classifier): the classifier at `head_lr`; conv_head, bn2 and the last stage at `lr`; each stage below at
    `lr_decay` times the one above, down to the last `train_stages` stages (all of them and the stem when
    train_stages > S); every other parameter frozen (requires_grad False, so no gradient flows through it).
    Weight decay on weights of 2+ dimensions only. Discriminative rates per layer group: Howard & Ruder 2018
    (ULMFiT). lr, head_lr: peak AdamW rates per step. Returns the groups with "params", "lr" and "weight_decay"
    (empty groups dropped). Raises AttributeError for a model without those timm EfficientNet attributes."""
    blocks = list(model.blocks.children())  # type: ignore[union-attr]
    tiers: list[tuple[list[nn.Module], float]] = [([model.classifier], head_lr)]  # type: ignore[list-item]
    tiers.append(([model.conv_head, model.bn2, blocks[-1]], lr))  # type: ignore[list-item]
    for depth, block in enumerate(reversed(blocks[:-1]), start=1):
        if depth < train_stages:
            tiers.append(([block], lr * recipe.lr_decay**depth))
    if train_stages > len(blocks):
        tiers.append(([model.conv_stem, model.bn1], lr * recipe.lr_decay ** len(blocks)))  # type: ignore[list-item]
    for p in model.parameters():
        p.requires_grad_(False)
    groups = []
    for modules, rate in tiers:
        params = [p for m in modules for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        decay = [p for p in params if p.ndim > 1]
        rest = [p for p in params if p.ndim <= 1]
        groups += [
            {"params": decay, "lr": rate, "weight_decay": recipe.weight_decay},
            {"params": rest, "lr": rate, "weight_decay": 0.0},
        ]
    return [g for g in groups if g["params"]]


def replaces_best(val_acc: float, best_acc: float | None, best_epoch: int, n_val: int) -> bool:
    """Whether an epoch with validation accuracy `val_acc` (on `n_val` images) replaces the best so far: the starting
    point (`best_epoch` 0, the probe, `best_acc` its accuracy; None: nothing to beat) when it gets at least
    MIN_GAIN_OVER_START more images right, a fine-tuned epoch when it gets at least one more. Whole images: the
    accuracies of bf16 logits and of the probe's float64 ones differ in the last bits, which is no improvement."""
    if best_acc is None:
        return True
    gain = (MIN_GAIN_OVER_START if best_epoch == 0 else 1) - 0.5
    return val_acc > best_acc + gain / n_val


def lr_factor(p: float, warmup: float) -> float:
    """The multiplier of the peak learning rate at progress p (clipped to [0, 1]): linear warm-up from ~0 to 1 over
    the first `warmup` share of progress, then half-cosine decay to 0 at p = 1 (Loshchilov & Hutter 2017, SGDR,
    one cycle without restarts). Result in [0, 1]."""
    p = min(max(p, 0.0), 1.0)
    if p < warmup:
        return (p + 1e-3) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (p - warmup) / max(1e-9, 1.0 - warmup)))


@dataclass
class FinetuneBudget:
    """When fine-tuning must end: `epochs` (None: as many as fit) and/or a `deadline` (time.perf_counter()
    seconds) by which training and its last validation are done; `val_cost_s`: the expected seconds of one
    validation pass, reserved before the deadline until the first pass measures it."""

    epochs: int | None
    deadline: float | None
    val_cost_s: float = 0.0


@dataclass
class FinetuneResult:
    """What `finetune` did: history, one row per epoch (phase, train_loss, train_acc, images, lr, epoch, epoch_s
    in seconds, val_acc, val_loss; val_* None without validation images); best_epoch and best_acc (validation
    accuracy in [0, 1], else the starting accuracy); steps (optimizer steps) and images (training images seen)
    over all epochs; seconds: wall time of the fine-tuning; stopped: "time budget" or "epochs done";
    train_stages: how many backbone stages learned (the last one with the head convolution; the stem counts as
    one more when it learned too)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0  # 0: nothing beat the starting point (the probe); its weights were kept
    best_acc: float | None = None
    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    stopped: str = ""
    train_stages: int = 0


@torch.no_grad()
def _validate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, dc: DataConfig, device: torch.device, amp: bool, dist: Dist
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on x, y (not empty), each process scoring its share and the sums added."""
    from picsift.train.loop import predict_logits

    x_mine, y_mine = x[dist.shard()], y[dist.shard()]
    correct = loss_sum = 0.0
    if len(y_mine):
        logits = predict_logits(model, x_mine, dc, device, batch_size=64, amp=amp)
        target = torch.from_numpy(y_mine)
        correct = float((logits.argmax(1) == target).sum())
        loss_sum = float(nn.functional.cross_entropy(logits, target, reduction="sum"))
    correct, loss_sum = dist.sum([correct, loss_sum])
    return correct / len(y), loss_sum / len(y)


def finetune(
    model: nn.Module,
    data: Any,
    cfg: TrainConfig,
    recipe: TransferRecipe,
    device: torch.device,
    budget: FinetuneBudget,
    start_acc: float | None,
    log_row: Callable[[dict[str, Any]], None],
    first_epoch: int = 1,
    dist: Dist = SINGLE,
) -> FinetuneResult:
    """Fine-tune `model` (a timm EfficientNet with its classifier set, on `device`) on `data` (TrainData:
    uint8 arrays at the storage size) with `recipe` (TrainConfig's settings already applied, see
    `fit.with_train_settings`; `cfg` gives the augmentation and the seed). One history row per epoch goes to `log_row`. On return the model holds the
    best validation epoch's weights, or its starting weights when no epoch beat `start_acc`; without validation
    images, its last weights. Stops at `budget`. Returns the FinetuneResult; every parameter has requires_grad
    True again on return. Discriminative learning rates: `freeze_and_group` (Howard & Ruder 2018). With `dist`, one process of
    several (module docstring)."""
    dc: DataConfig = data.data_config
    has_val = len(data.y_val) > 0
    train_stages = recipe.train_stages or (CPU_TRAIN_STAGES if device.type == "cpu" else 99)
    groups = freeze_and_group(model, recipe, recipe.lr, recipe.head_lr, train_stages)
    trainable = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    batch = recipe.batch_size
    loader, sampler = _loader(data, cfg, batch, dist)
    trainer = dist.wrap(model)
    amp = recipe.amp
    names = {id(p): n for n, p in model.named_parameters()}
    keep = {names[id(p)] for p in trainable}

    def snapshot() -> dict[str, torch.Tensor]:
        return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if n in keep}

    best_state = snapshot()
    out = FinetuneResult(best_acc=start_acc, train_stages=min(train_stages, len(list(model.blocks.children())) + 1))  # type: ignore[union-attr]
    planned = (budget.epochs or 1000) * max(1, len(loader))
    t0 = time.perf_counter()
    end = budget.deadline
    val_cost = budget.val_cost_s if has_val else 0.0  # seconds of a validation pass, reserved before the deadline
    step_cost = 0.0  # seconds of the last training step
    epoch = 0
    with progress.bar("fine-tuning", total=budget.epochs) as (bar, task):
        while budget.epochs is None or epoch < budget.epochs:
            if end is not None and dist.any(time.perf_counter() + val_cost + MIN_STEPS * step_cost >= end):
                out.stopped = "time budget"
                break
            epoch += 1
            if sampler is not None:
                sampler.set_epoch(epoch)
            clock = _Clock(planned, t0, end, val_cost, step_cost, dist)
            row = _epoch(trainer, loader, optimizer, base_lrs, criterion, device, amp, recipe, out, clock)
            step_cost = row.pop("_step_s")
            if has_val:
                tv = time.perf_counter()
                row["val_acc"], row["val_loss"] = _validate(model, data.x_val, data.y_val, dc, device, amp, dist)
                val_cost = time.perf_counter() - tv
            else:
                row["val_acc"] = row["val_loss"] = None
            row["epoch"] = first_epoch + epoch - 1
            row["epoch_s"] = time.perf_counter() - row["epoch_s"]
            out.history.append(row)
            log_row(row)
            info = f"val acc {row['val_acc']:.3f}" if has_val else f"train loss {row['train_loss']:.3f}"
            bar.update(task, advance=1, info=info)  # type: ignore[arg-type]
            if has_val and replaces_best(row["val_acc"], out.best_acc, out.best_epoch, len(data.y_val)):
                out.best_acc, out.best_epoch, best_state = row["val_acc"], row["epoch"], snapshot()
            if row["images"] == 0:
                break
    if has_val or not out.history:
        with torch.no_grad():
            params = dict(model.named_parameters())
            for n, v in best_state.items():
                params[n].copy_(v.to(params[n].device))
    elif out.history:
        out.best_epoch = out.history[-1]["epoch"]
    out.seconds = time.perf_counter() - t0
    out.stopped = out.stopped or "epochs done"
    for p in model.parameters():
        p.requires_grad_(True)
    return out


def _loader(
    data: Any, cfg: TrainConfig, batch: int, dist: Dist
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DistributedSampler | None]:
    """Shuffled, augmented training batches of `batch` images; in several processes, this one's shard of each
    epoch (and the sampler, whose epoch must be set)."""
    dc: DataConfig = data.data_config
    dataset = ArrayDataset(data.x_train, data.y_train, train_transform(dc, cfg.augment, cfg.random_erasing))
    sampler: torch.utils.data.DistributedSampler | None = None
    if dist.enabled:
        sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
        torch.manual_seed(cfg.seed + dist.rank)  # each process its own augmentation draws
    images = len(sampler) if sampler is not None else len(dataset)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=images > batch,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    return loader, sampler


@dataclass
class _Clock:
    """Where fine-tuning stands against its plan: `planned` steps, started at `t0`, to end (with its validation)
    by `end` (perf_counter seconds, None: no deadline); `val_cost` / `step_cost`: seconds of a validation pass and
    of the last step."""

    planned: int
    t0: float
    end: float | None
    val_cost: float
    step_cost: float
    dist: Dist

    def check(self, steps: int) -> tuple[float, bool]:
        """(progress in [0, 1], whether to stop before the next step) after `steps` steps; with a deadline in
        several processes, the furthest progress of any and a stop when any must (one collective)."""
        p = steps / self.planned
        if self.end is None:
            return p, False
        now = time.perf_counter()
        p = max(p, (now - self.t0) / max(1e-9, self.end - self.t0))
        stop = now + self.val_cost + self.step_cost >= self.end
        if self.dist.enabled:
            p, agreed = self.dist.maximum([p, 1.0 if stop else 0.0])
            stop = agreed > 0.5
        return p, stop


def _epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    base_lrs: list[float],
    criterion: nn.Module,
    device: torch.device,
    amp: bool,
    recipe: TransferRecipe,
    out: FinetuneResult,
    clock: _Clock,
) -> dict[str, Any]:
    """One pass over the loader, cut short so that the validation after it still ends by `clock.end`."""
    model.train()
    for m in model.modules():  # ImageNet statistics stay (see the module docstring)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    start = time.perf_counter()
    seen, loss_sum, correct = 0, 0.0, 0
    lr_now = 0.0
    for xb, yb in loader:
        now = time.perf_counter()
        p, stop = clock.check(out.steps)
        if stop:
            break
        for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = lr_now = base * lr_factor(p, recipe.warmup)
        xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        yb = yb.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(xb)
        loss = criterion(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        out.steps += 1
        seen += len(yb)
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        clock.step_cost = time.perf_counter() - now
    total, loss_sum, right = clock.dist.sum([seen, loss_sum, correct])  # over every process's shard
    seen = int(total)
    out.images += seen
    return {
        "phase": "finetune",
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": right / max(seen, 1),
        "images": seen,
        "lr": lr_now,
        "epoch_s": start,
        "_step_s": clock.step_cost,
    }
