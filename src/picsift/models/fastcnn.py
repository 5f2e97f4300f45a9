"""PLACEHOLDER fast CNN (to be replaced by the speed-record-inspired design)."""

from __future__ import annotations

from typing import Any

from torch import nn

from picsift.models.registry import DataConfig, ModelSpec, register

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class FastCNN(nn.Module):
    def __init__(self, num_classes: int, width: int = 64, input_size: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU(), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(self.features(x).amax(dim=(2, 3)))


def build(num_classes: int, pretrained: bool = False, weights: str | None = None, **kwargs: Any) -> nn.Module:
    return FastCNN(num_classes, **kwargs)


def register_fastcnn() -> None:
    register(
        ModelSpec(
            name="fastcnn",
            family="fast",
            data_config=DataConfig(input_size=32, mean=CIFAR_MEAN, std=CIFAR_STD, crop_pct=1.0),
            description="picsift's fast from-scratch CNN for small images (the default)",
            builder=build,
        )
    )
