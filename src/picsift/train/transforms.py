"""torchvision transforms v2 training pipelines derived from the model's DataConfig (never hand-picked twice).

Evaluation and prediction crop and normalise with picsift.models.forward.model_input.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from picsift.models.registry import DataConfig


def _finish(dc: DataConfig) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(dc.mean), std=list(dc.std))]


def train_transform(dc: DataConfig, augment: str, random_erasing: float = 0.0) -> v2.Compose:
    """The training transforms: a random resized crop and flip (with "trivial" or "randaugment" added), or a
    centre crop for "none"; then float scaling and normalisation, and random erasing when asked."""
    steps: list[v2.Transform] = []
    if augment == "none":
        steps.append(v2.CenterCrop(dc.input_size))
    else:
        steps += [
            v2.RandomResizedCrop(dc.input_size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
        ]
        if augment == "trivial":
            steps.append(v2.TrivialAugmentWide())
        elif augment == "randaugment":
            steps.append(v2.RandAugment())
    steps += _finish(dc)
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing))
    return v2.Compose(steps)


class ArrayDataset(torch.utils.data.Dataset):
    """uint8 (N, S, S, 3) array + labels -> transformed tensors."""

    def __init__(self, x, y, transform) -> None:
        self.x = torch.from_numpy(x).permute(0, 3, 1, 2)  # a view: no copy
        self.y = torch.from_numpy(y)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]
