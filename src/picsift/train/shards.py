"""Each process's share of the training images in a run of several processes (torchrun).

Every process draws the same epoch order (the same seeded generator, advanced the same way) and keeps every
`world_size`-th image from its rank on: the shards are disjoint, equally long (the last `n % world_size` images
of the order sit that epoch out, a different few each epoch), and together they are the epoch. This is what
torch's DistributedSampler does with the epoch as seed; `ShardedSampler` does it for any sampler whose draws are
seeded (the balanced sampler), `shard_order` for the fast recipe's in-memory batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def shard_order(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """The items of `order` (a 1-D tensor, the same on every process) that process `rank` of `world_size` takes:
    order[rank::world_size] over the first len // world_size * world_size items."""
    if world_size <= 1:
        return order
    usable = len(order) // world_size * world_size
    return order[rank:usable:world_size]


class ShardedSampler(torch.utils.data.Sampler[int]):
    """Process `rank`'s shard of what `sampler` draws each epoch. `sampler` must draw the same indices on every
    process (seeded identically), as DistributedSampler assumes of its seed."""

    def __init__(self, sampler: torch.utils.data.Sampler[int], rank: int, world_size: int) -> None:
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    def __iter__(self) -> Iterator[int]:
        drawn = torch.tensor(list(self.sampler), dtype=torch.long)
        return iter(shard_order(drawn, self.rank, self.world_size).tolist())

    def __len__(self) -> int:
        return len(self.sampler) // self.world_size  # type: ignore[arg-type]
