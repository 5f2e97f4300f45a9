"""The fast recipe: picsift's default from-scratch training, sized to the data and to a time budget.

Data arrive as uint8 arrays (decoded once by the spine's cache) and stay uint8 on the training
device; batches are augmented and normalised as whole tensors (`augment`). The schedule is a
function of progress p = max(steps done / steps planned, time used / time budget), so a budgeted
run decays its learning rate on time, whatever speed the machine gives it, and stops at p = 1.

A run is set up (`setup.set_up`: data checks, the network planned for the budget, batches, optimisers,
schedules), then trains epoch by epoch; each epoch ends by validating and checkpointing when the budget allows.
What changes while it trains lives in one `FitState`.

Under torchrun (`dist`) each process trains its shard of every epoch in DistributedDataParallel; the summed loss
is scaled by the number of processes (DDP averages gradients; the recipe's rates are per example of the global
batch). Progress under a time budget is the furthest any process has got, and whether an epoch validates is
decided together, so all processes take the same steps; validation is split across them and summed; only rank 0
checkpoints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picsift import progress
from picsift.config import TrainConfig
from picsift.device import autocast
from picsift.distributed import SINGLE, Dist
from picsift.models.registry import ModelSpec
from picsift.runs import RunFolder
from picsift.train.checkpoints import save_checkpoint
from picsift.train.data import TrainData, TrainedModel
from picsift.train.fast.evaluate import logits_for
from picsift.train.fast.freeze import freeze_blocks, frozen_at
from picsift.train.fast.optim import apply_schedule
from picsift.train.fast.recipe import FastRecipe
from picsift.train.fast.resize import shrink, size_at
from picsift.train.fast.runtime import cudnn_autotune, thread_scope
from picsift.train.fast.setup import FastSetup, set_up
from picsift.train.fast.sizing import MONITOR_SHARE, monitor_sample

__all__ = ["fit_fast"]
log = logging.getLogger("picsift.train")
EVAL_MARGIN = 1.2  # the reserve for the final validation pass: the measured pass, scaled to all images, x this


@dataclass
class FitState:
    """What changes while the fast recipe trains: progress, time spent and counters."""

    epochs: int  # planned
    budget_s: float | None  # the whole call's time budget in seconds
    n_val: int  # validation images
    t0: float  # perf_counter() when the run began (earlier sessions of a resumed run included)
    step: int  # optimiser steps done
    position: float  # epochs done, fractional within an epoch
    watch: np.ndarray | None = None  # validation images checked before the last epoch (None: all)
    eval_s: float | None = None  # measured cost of one full validation pass, reserved for the final one
    overhead_s: float = 0.0  # seconds spent validating and checkpointing
    trained_images: int = 0  # images trained in this session
    trained_s: float = 0.0  # seconds of training steps in this session
    train_s_before: float = 0.0  # seconds of training in the epochs finished in this session
    frozen: int = 0  # leading blocks frozen so far
    skipped: int = 0  # image-epochs left out by pruning
    images_at: dict[str, int] = field(default_factory=dict)  # images trained per downscaled size
    history: list[dict[str, Any]] = field(default_factory=list)
    dist: Dist = SINGLE

    def fraction(self, now: float) -> float:
        """Progress p in [0, 1]: epochs done / planned, or under a budget the time used over the budget less a
        reserve for the final validation pass, whichever is larger. Under a budget in several processes, the
        largest p of any process (a collective: every process calls it at the same points)."""
        p = self.position / self.epochs
        if self.budget_s:
            if self.eval_s is not None:
                reserve = self.eval_s
            else:  # a forward pass costs about a third of a training step; keep a margin
                per_image = self.trained_s / self.trained_images if self.trained_images else 0.0
                reserve = max(0.02 * self.budget_s, 0.35 * self.n_val / self.dist.world_size * per_image)
            p = self.dist.agree_max(max(p, (now - self.t0) / max(1e-3, self.budget_s - reserve)))
        return min(p, 1.0)

    def may_check(self, done: bool) -> bool:
        """Whether this epoch validates and checkpoints. Under a budget, validation and checkpoints may take at most
        MONITOR_SHARE of the training time so far (tiny sets train an epoch faster than they validate); the last
        epoch always validates. Agreed by all processes (any one's yes)."""
        if done or not self.budget_s:
            return True
        return self.dist.any(self.overhead_s <= MONITOR_SHARE * self.train_s_before)


@dataclass
class _EpochTally:
    started: float  # perf_counter() at the epoch's start
    loss_sum: torch.Tensor  # running sums stay on the device: no host sync per step on a GPU
    correct: torch.Tensor
    seen: int = 0
    out_of_time: bool = False  # the schedule reached p = 1 within the epoch


def fit_fast(
    spec: ModelSpec,
    data: TrainData,
    cfg: TrainConfig,
    device: torch.device,
    log_row: Callable[[dict[str, Any]], None],
    run_dir: Path,
    resume_from: Path | None = None,
    dist: Dist = SINGLE,
) -> TrainedModel:
    """Train the fast CNN on data.x_train (uint8 (N, S, S, 3) at the data config's input size); one history row per
    epoch goes to `log_row`, checkpoints (and snapshots) to `run_dir`. Returns the model on CPU in eval mode with
    its constructor arguments. With `dist`, one process of several (module docstring): only rank 0 writes into
    `run_dir`. Raises ConfigError for settings (cfg.model_params) the recipe does not know or accept, and for data
    it cannot train on."""
    t_start = time.perf_counter()
    recipe = FastRecipe.from_params(cfg.model_params)
    with thread_scope(device, recipe.threads, dist.local_world_size), cudnn_autotune(device):
        run = set_up(spec, data, cfg, device, recipe, resume_from, dist)
        # The budget covers everything fit_fast does: setup, training, per-epoch validation, the final pass.
        state = FitState(
            epochs=run.epochs,
            budget_s=run.budget_s,
            n_val=len(data.y_val),
            t0=t_start - run.used_s,
            step=run.step,
            position=float(run.start_epoch),
            # A budgeted run spends its time on training: epochs before the last validate on a fixed sample of
            # the validation split (the last epoch on all of it), so a large split does not eat the budget.
            watch=monitor_sample(len(data.y_val), cfg.seed) if run.budget_s else None,
            dist=dist,
        )
        log.info(
            "fastcnn %s: %d images at %dpx, batch %d, %s, widths %s, setup %.1fs",
            device,
            len(data.y_train),
            run.data_config.input_size,
            run.aug.batch_size,
            f"budget {run.budget_s:.0f}s" if run.budget_s else f"{run.epochs} epochs",
            run.model_kwargs["widths"],
            time.perf_counter() - t_start,
        )
        _train_epochs(spec.name, run, state, data, cfg, log_row, run_dir)
        return _result(run, state, t_start)


def _train_epochs(
    name: str,
    run: FastSetup,
    state: FitState,
    data: TrainData,
    cfg: TrainConfig,
    log_row: Callable[[dict[str, Any]], None],
    run_dir: Path,
) -> None:
    total = None if run.budget_s else run.epochs - run.start_epoch
    with progress.bar(f"training {name}", total=total) as (bar, task):
        for epoch in range(run.start_epoch, run.epochs):
            tally = _train_epoch(run, state, epoch, len(data.y_train))
            if run.pruner is not None:
                run.pruner.merge()  # every process's losses, before the checkpoint and the next epoch's plan
            done = tally.out_of_time or epoch + 1 >= run.epochs or state.fraction(time.perf_counter()) >= 1.0
            if done and run.averager is not None:
                run.averager.update(run.model, 1.0, final=True)
            run.dist.sync_buffers(run.model)  # rank 0's BatchNorm statistics, for validation and the result
            train_s = time.perf_counter() - tally.started
            state.train_s_before += train_s
            tv = time.perf_counter()
            check = state.may_check(done)
            val_acc, val_loss, n_watched = _validate(run, state, data, done, tv) if check else (None, None, 0)
            row = _history_row(run, state, epoch, tally, train_s, val_acc, n_watched)
            row["val_loss"] = val_loss
            state.history.append(row)
            log_row(row)
            if val_acc is not None:
                bar.update(task, info=f"val acc {val_acc:.3f}")  # type: ignore[arg-type]
            bar.update(task, advance=1)  # type: ignore[arg-type]
            if check and run.dist.is_main:
                _checkpoint(run, state, epoch, RunFolder(run_dir).checkpoint_path)
            state.overhead_s += time.perf_counter() - tv
            if (
                cfg.snapshots and run.dist.is_main
            ):  # the last N epochs' weights, for a snapshot ensemble (improve.snapshots)
                from picsift.runs.snapshots import save_snapshot

                save_snapshot(run_dir, run.model, epoch + 1, cfg.snapshots)
            if done:
                break


def _train_epoch(run: FastSetup, state: FitState, epoch: int, n: int) -> _EpochTally:
    """One pass over the (pruned) training images, stopping early when the schedule reaches p = 1."""
    run.model.train()
    tally = _EpochTally(
        started=time.perf_counter(),
        loss_sum=torch.zeros((), device=run.device),
        correct=torch.zeros((), device=run.device, dtype=torch.long),
    )
    subset = run.pruner.plan(state.fraction(time.perf_counter())) if run.pruner is not None else None
    n_batches = run.aug.steps_per_epoch(subset)
    state.skipped += 0 if subset is None else n - len(subset)
    for i, (xb, yb, idx) in enumerate(run.aug.epoch(epoch, subset)):
        p = state.fraction(time.perf_counter())
        if p >= 1.0:
            tally.out_of_time = True
            break
        logits, loss = _train_step(run, state, xb, yb, idx, p)
        state.position = epoch + (i + 1) / n_batches
        state.trained_images += len(yb)
        state.trained_s = state.train_s_before + time.perf_counter() - tally.started
        if run.averager is not None and state.step % run.averager.every == 0:
            run.averager.update(run.model, state.fraction(time.perf_counter()))
        tally.seen += len(yb)
        tally.loss_sum += loss.detach()
        tally.correct += (logits.detach().argmax(1) == yb).sum()
    return tally


def _train_step(
    run: FastSetup, state: FitState, xb: torch.Tensor, yb: torch.Tensor, idx: torch.Tensor, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step at progress p on batch (xb, yb) of images idx; returns (logits, summed loss)."""
    whiten_bias = apply_schedule(run.sgd, run.ortho, p, run.recipe)
    if run.dist.enabled and not run.freezing:
        # Every parameter gets a gradient every step, as DistributedDataParallel expects by default: the whitening
        # bias keeps its gradient but its learning rate is 0 from here on (apply_schedule), so it stays as it is.
        whiten_bias = True
    input_size = run.data_config.input_size
    size = size_at(run.resize, p, input_size)
    if run.freezing and frozen_at(run.freezing, p) > state.frozen:  # freezing only ever grows
        state.frozen = frozen_at(run.freezing, p)
        freeze_blocks(run.model, state.frozen)
    if size != input_size:
        xb = shrink(xb, size)
        state.images_at[str(size)] = state.images_at.get(str(size), 0) + len(yb)
    with autocast(run.device, run.amp):
        logits = run.train_step(xb, whiten_bias)
    losses = run.criterion(logits.float(), yb)
    loss = run.pruner.weigh(idx, losses) if run.pruner is not None else losses.sum()
    # DistributedDataParallel averages gradients over the processes; the recipe sums over the global batch.
    (loss * run.dist.world_size if run.dist.enabled else loss).backward()
    run.sgd.step()
    run.ortho.step()
    run.model.zero_grad(set_to_none=True)
    state.step += 1
    return logits, loss


def _validate(
    run: FastSetup, state: FitState, data: TrainData, done: bool, started: float
) -> tuple[float | None, float | None, int]:
    """Accuracy and mean cross-entropy on the validation images (the last epoch: all; before it, state.watch) and
    how many were seen, each process scoring its share and the counts summed (None, None when there are no
    images); measures the cost of a full pass for the budget's reserve."""
    watch = None if done else state.watch
    x_val, y_val = (data.x_val, data.y_val) if watch is None else (data.x_val[watch], data.y_val[watch])
    x_mine, y_mine = x_val[run.dist.shard()], y_val[run.dist.shard()]
    correct, loss_sum = 0.0, 0.0
    if len(y_mine):
        val_logits = logits_for(run.model, x_mine, run.data_config, run.device, amp=run.amp).float()
        y = torch.from_numpy(np.asarray(y_mine, dtype=np.int64))
        correct = float((val_logits.argmax(1) == y).sum())
        loss_sum = float(torch.nn.functional.cross_entropy(val_logits, y, reduction="sum"))
    state.eval_s = (time.perf_counter() - started) * EVAL_MARGIN * state.n_val / max(1, len(y_val))
    correct, loss_sum = run.dist.sum([correct, loss_sum])
    if not len(y_val):
        return None, None, 0
    return correct / len(y_val), loss_sum / len(y_val), len(y_val)


def _history_row(
    run: FastSetup,
    state: FitState,
    epoch: int,
    tally: _EpochTally,
    train_s: float,
    val_acc: float | None,
    n_watched: int,
) -> dict[str, Any]:
    seen, loss_sum, correct = state.dist.sum([tally.seen, float(tally.loss_sum), float(tally.correct)])
    tally.seen = int(seen)  # every process's images
    now = time.perf_counter()
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(tally.seen, 1),
        "train_acc": correct / max(tally.seen, 1),
        "val_acc": val_acc,
        "lr": run.ortho.param_groups[0]["lr"] if run.ortho.param_groups else 0.0,
        "epoch_s": now - tally.started,
        "train_s": train_s,
        "elapsed_s": now - state.t0,
        "images": tally.seen,
        "val_images": n_watched,
    }


def _checkpoint(run: FastSetup, state: FitState, epoch: int, path: Path) -> None:
    """Everything `--resume` needs to continue the same schedule: weights, optimiser and averaging states, the
    pruner's losses, where the run stands and the network's constructor arguments."""
    save_checkpoint(
        {
            "model": run.model.state_dict(),
            "sgd": run.sgd.state_dict(),
            "ortho": run.ortho.state_dict(),
            "slow": run.averager.slow if run.averager else None,
            "pruner": run.pruner.state_dict() if run.pruner else None,
            "epoch": epoch,
            "step": state.step,
            "used_s": time.perf_counter() - state.t0,
            "batch_size": run.aug.batch_size,
            "world_size": run.dist.world_size,
            "model_kwargs": run.model_kwargs,
        },
        path,
    )


def _result(run: FastSetup, state: FitState, t_start: float) -> TrainedModel:
    """The trained model on the CPU in eval mode, with what the recipe decided and did (`extra`)."""
    run.model.eval()
    model = run.model.cpu().to(memory_format=torch.contiguous_format)
    pruner = run.pruner
    extra = {
        "recipe": "fast",
        "batch_size": run.aug.batch_size,
        **({"global_batch_size": run.aug.batch_size * run.dist.world_size} if run.dist.enabled else {}),
        "steps": state.step,
        "label_smoothing": run.label_smoothing,
        "low_res": {"stages": run.resize, "images": state.images_at},
        "freeze": {"stages": run.freezing, "frozen_blocks": state.frozen} if run.freezing else None,
        "prune": {"ratio": pruner.ratio, "until": pruner.until, "skipped": state.skipped} if pruner else None,
        "elapsed_s": time.perf_counter() - t_start,
        "budget_s": run.budget_s,
    }
    # The recipe returns its last (averaged) weights, not its best epoch's, and validates them on every validation
    # image: report what was kept.
    last = state.history[-1] if state.history else None
    return TrainedModel(
        model=model,
        model_kwargs=run.model_kwargs,
        data_config=run.data_config,
        history=state.history,
        extra=extra,
        val_acc=last["val_acc"] if last is not None and state.n_val else None,
        kept_epoch=last["epoch"] if last is not None else None,
    )
