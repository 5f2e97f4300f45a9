"""Dynamic data pruning for the fast recipe: skip part of the examples the model already fits.

The idea of InfoBatch (Qin et al., ICLR 2024), re-derived for this recipe: each training step records
every example's loss (free: the forward pass computes it anyway). At the start of an epoch, examples
whose last loss is below the mean are "well learned"; a random `ratio` of them sit the epoch out, and the
ones that stay have their loss scaled by 1 / (1 - ratio), so the expected gradient over the epoch is the
full data's. Examples not yet seen, or above the mean, always train. Late in training (progress from
`until` on) every example trains again at weight 1, so the end of the run sees the plain objective.

Under a time budget a pruned epoch is simply shorter: the run fits more epochs of the informative
examples into the same time.

In a run of several processes each records the losses of its shard; `merge` sums what each process recorded
since the last merge, so every process plans the next epoch from the same losses (and draws the same subset).
"""

from __future__ import annotations

from typing import Any

import torch

from picsift.distributed import SINGLE, Dist
from picsift.errors import ConfigError
from picsift.train.fast.recipe import FastRecipe


class LossPruner:
    """Per-example losses and weights live on the training device (no host sync per step on a GPU);
    the generator (CPU) draws which examples sit out."""

    def __init__(
        self,
        n: int,
        ratio: float,
        until: float,
        generator: torch.Generator,
        device: torch.device | None = None,
        dist: Dist = SINGLE,
    ) -> None:
        if not 0.0 <= ratio < 1.0:
            raise ConfigError(f"model_params.prune must be in [0, 1), got {ratio}")
        self.ratio = ratio
        self.until = until
        self.generator = generator
        self.device = device or torch.device("cpu")
        self.loss = torch.full((n,), float("inf"), device=self.device)  # never seen: always kept
        self.weight = torch.ones(n, device=self.device)
        self.dist = dist
        self.fresh = torch.zeros(n, dtype=torch.bool, device=self.device)  # recorded since the last merge

    def merge(self) -> None:
        """Give every process the losses all of them recorded since the last merge (a collective: every process
        calls it at the same point; nothing to do in one process)."""
        if not self.dist.enabled:
            return
        recorded = torch.where(self.fresh, self.loss, torch.zeros_like(self.loss))
        counts = self.fresh.float()
        self.dist.sum_tensor(recorded)
        self.dist.sum_tensor(counts)
        self.loss = torch.where(counts > 0, recorded / counts.clamp_min(1.0), self.loss)
        self.fresh.zero_()

    def plan(self, progress: float) -> torch.Tensor:
        """The example indices to train this epoch (CPU int64); sets `weight` for them."""
        n = len(self.loss)
        self.weight = torch.ones(n, device=self.device)
        loss = self.loss.cpu()
        seen = torch.isfinite(loss)
        if self.ratio <= 0 or progress >= self.until or not bool(seen.any()):
            return torch.arange(n)
        well_learned = seen & (loss < loss[seen].mean())
        dropped = well_learned & (torch.rand(n, generator=self.generator) < self.ratio)
        self.weight[(well_learned & ~dropped).to(self.device)] = 1.0 / (1.0 - self.ratio)
        return torch.nonzero(~dropped).flatten()

    def weigh(self, idx: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Record a batch's per-example losses (idx: the examples' indices) and return its weighted sum."""
        idx = idx.to(self.device)
        self.loss[idx] = losses.detach().float()
        self.fresh[idx] = True
        return (losses * self.weight[idx]).sum()

    def state_dict(self) -> dict[str, Any]:
        """The per-example losses, for a checkpoint."""
        return {"loss": self.loss.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the losses from `state_dict`; ignored when the number of examples differs."""
        if len(state["loss"]) == len(self.loss):
            self.loss = state["loss"].to(self.device).clone()


def pruner_from(
    recipe: FastRecipe,
    n: int,
    budgeted: bool,
    generator: torch.Generator,
    device: torch.device | None = None,
    dist: Dist = SINGLE,
) -> LossPruner | None:
    """The recipe's `prune` (the drop ratio for well-learned examples; 0 turns it off; default 0.5 under a time
    budget, else off) and `prune_until` (progress from which every example trains again)."""
    ratio = recipe.prune if recipe.prune is not None else 0.5 if budgeted else 0.0
    if ratio <= 0:
        return None
    return LossPruner(n, ratio, recipe.prune_until, generator, device, dist)
