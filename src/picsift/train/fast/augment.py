"""Whole-batch augmentation for the fast recipe: uint8 tensors in, normalised float batches out.

No per-image Python: flips and translations are index arithmetic over the whole batch, done on the
device that trains (so a GPU keeps a small dataset resident and never waits for a loader).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from picsift.train.shards import shard_order


class BatchAugmenter:
    """Serves shuffled, augmented, normalised batches from a uint8 (N, 3, S, S) tensor.

    - alternating flips: each image gets a random flip state in epoch 0 and the opposite state every
      other epoch, so every image is seen both ways within two epochs (less redundancy than coin flips);
    - translation by up to `translate` pixels with reflect padding, one random shift per image;
    - optional colour jitter: per image, a brightness shift and a contrast factor 1 +- `jitter`, applied to the
      normalised pixels (units of the data's standard deviation).

    In a run of several processes (`rank` of `world_size`), every process holds all images and draws the same
    order, flips and shifts (the same seeded generator, advanced the same way), and takes its shard of each epoch
    (`picsift.train.shards.shard_order`) in batches of `batch_size`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        *,
        batch_size: int,
        translate: int = 2,
        flip: bool = True,
        jitter: float = 0.0,
        generator: torch.Generator,
        channels_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 (N, 3, S, S) images, got {images.dtype} {tuple(images.shape)}")
        self.device = images.device
        self.size = images.shape[-1]
        self.pad = translate
        # Pad once (reflect) so every batch only gathers; reflect padding needs a float tensor, then back to uint8.
        if translate > 0:
            padded = torch.nn.functional.pad(images.float(), (translate,) * 4, mode="reflect")
            self.images = padded.round().to(torch.uint8)
        else:
            self.images = images
        self.labels = labels.to(self.device)
        self.rank, self.world_size = rank, world_size
        self.batch_size = min(batch_size, max(1, len(labels) // world_size))
        self.flip = flip
        self.jitter = jitter
        self.generator = generator
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255.0
        self.flip_state = torch.rand(len(labels), generator=generator) < 0.5

    def steps_per_epoch(self, subset: torch.Tensor | None = None) -> int:
        """Batches in an epoch (of this process's shard) over all images or over `subset`: drop_last, but at least
        one."""
        return max(1, (len(self.labels) if subset is None else len(subset)) // self.world_size // self.batch_size)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float (B, 3, H, W) normalised by the mean and std (channels-last when set)."""
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _crop(self, x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S+2p, S+2p) uint8; dy, dx: (B,) offsets in [0, 2p] -> (B, 3, S, S)."""
        b, c, h, w = x.shape
        s = self.size
        ar = torch.arange(s, device=x.device)
        rows = (dy.view(b, 1) + ar).view(b, 1, s, 1).expand(b, c, s, w)
        x = torch.gather(x, 2, rows)
        cols = (dx.view(b, 1) + ar).view(b, 1, 1, s).expand(b, c, s, s)
        return torch.gather(x, 3, cols)

    def epoch(
        self, epoch: int, subset: torch.Tensor | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (x float normalised (B, 3, S, S), y int64 (B,), the images' indices (B,) on the CPU) for one
        epoch over all images, or over `subset` (indices) when given."""
        n = len(self.labels)
        pool = torch.arange(n) if subset is None else subset.cpu()
        order = shard_order(pool[torch.randperm(len(pool), generator=self.generator)], self.rank, self.world_size)
        flips = self.flip_state ^ bool(epoch % 2) if self.flip else torch.zeros(n, dtype=torch.bool)
        shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=self.generator)
        for i in range(self.steps_per_epoch(pool)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            dev_idx = idx.to(self.device)
            x = self.images[dev_idx]
            if self.pad > 0:
                sh = shifts[idx].to(self.device)
                x = self._crop(x, sh[:, 0], sh[:, 1])
            if self.flip:
                mask = flips[idx].to(self.device).view(-1, 1, 1, 1)
                x = torch.where(mask, x.flip(-1), x)
            yield self._jitter(self.normalise(x)), self.labels[dev_idx], idx

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        if self.jitter <= 0:
            return x
        # Drawn on the CPU from the seeded generator (reproducible on any device), two numbers per image.
        r = (torch.rand(len(x), 2, generator=self.generator) * 2 - 1) * self.jitter
        r = r.to(x.device)
        return (x + r[:, 0].view(-1, 1, 1, 1)) * (1 + r[:, 1].view(-1, 1, 1, 1))
