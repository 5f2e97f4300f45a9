"""Pretrained weights provider: the real EfficientNet-Lite0 weights package, explicit key mapping, sha256
checks, explicit files, the error when no weights exist, and the embedding backends."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from picsift.errors import ConfigError, ModelNotFoundError, WeightsNotAvailableError
from picsift.models.pretrained import (
    KNOWN,
    WeightsIntegrityError,
    WeightsMismatchError,
    available_pretrained,
    create_pretrained_backbone,
    embed,
    get_pretrained_spec,
    locate_weights,
    make_embedder,
    sha256_file,
)
from picsift.models.pretrained.keymap import map_state_dict, target_name, timm_block_layout
from picsift.models.pretrained.provider import read_state_file
from support.images import DATASETS, require

LITE0 = KNOWN["efficientnet_lite0"]
IMAGENET_ANT, IMAGENET_BEE = 310, 309


def require_package() -> None:
    require(importlib.util.find_spec(LITE0.module) is not None, f"{LITE0.package} is not installed")


def timm_lite0(num_classes: int = 1000) -> torch.nn.Module:
    import timm

    return timm.create_model(LITE0.timm_arch, pretrained=False, num_classes=num_classes)


@pytest.fixture(scope="module")
def lite0_features() -> tuple[torch.nn.Module, object]:
    require_package()
    model, dc, _ = create_pretrained_backbone("efficientnet_lite0", num_classes=0)
    return model, dc


# ---- key mapping by rule ---------------------------------------------------------------------------


def test_key_rules_follow_block_type_and_stage_layout() -> None:
    layout = timm_block_layout(timm_lite0())
    assert [(s.stage, s.index) for s in layout][:4] == [(0, 0), (1, 0), (1, 1), (2, 0)]
    assert len(layout) == 16 and layout[0].kind == "DepthwiseSeparableConv" and layout[1].kind == "InvertedResidual"
    expect = {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_var": "bn1.running_var",
        # block 0 has no expansion: depthwise-separable, dw then pw
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._bn1.bias": "blocks.0.0.bn1.bias",
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.0._bn2.weight": "blocks.0.0.bn2.weight",
        # inverted residuals: pw (expand) -> dw -> pwl (project)
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn0.weight": "blocks.1.0.bn1.weight",
        "_blocks.2._depthwise_conv.weight": "blocks.1.1.conv_dw.weight",
        "_blocks.2._bn1.running_mean": "blocks.1.1.bn2.running_mean",
        "_blocks.15._project_conv.weight": "blocks.6.0.conv_pwl.weight",
        "_blocks.15._bn2.num_batches_tracked": "blocks.6.0.bn3.num_batches_tracked",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.weight": "bn2.weight",
        "_fc.bias": "classifier.bias",
    }
    assert {k: target_name(k, layout) for k in expect} == expect
    assert target_name("_blocks.16._depthwise_conv.weight", layout) is None  # past the last block
    assert target_name("_blocks.0._expand_conv.weight", layout) is None  # no expansion in block 0
    assert target_name("_head.weight", layout) is None


def test_package_file_sha256_and_every_tensor_maps_once() -> None:
    require_package()
    found = locate_weights("efficientnet_lite0")
    assert found.kind == "package"
    assert found.source == f"package {LITE0.package} {importlib.metadata.version(LITE0.package)}"
    assert found.path is not None and found.path.name == "efficientnet-lite0-57934424.pth"
    assert sha256_file(found.path) == LITE0.sha256
    state = read_state_file(found.path)
    assert len(state) == LITE0.num_tensors == 296
    model = timm_lite0()
    mapped = map_state_dict(state, model, "test")
    assert set(mapped) == set(model.state_dict()) and len(mapped) == 296
    # the same tensors, renamed: nothing copied or reshaped
    assert mapped["blocks.6.0.conv_pwl.weight"] is state["_blocks.15._project_conv.weight"]


def test_mapping_lists_unmapped_missing_and_misshapen_tensors() -> None:
    require_package()
    found = locate_weights("efficientnet_lite0")
    assert found.path is not None
    state = dict(read_state_file(found.path))
    state["_blocks.3._unknown_conv.weight"] = torch.zeros(1)
    del state["_conv_head.weight"]
    state["_bn1.bias"] = torch.zeros(7)
    with pytest.raises(WeightsMismatchError) as e:
        map_state_dict(state, timm_lite0(), "broken.pth")
    msg = str(e.value)
    assert "broken.pth" in msg
    assert "1 tensor(s) of the file have no target: _blocks.3._unknown_conv.weight" in msg
    assert "1 tensor(s) of the model are not in the file: conv_head.weight" in msg
    assert "bn2.bias (7,) vs model (1280,)" in msg


def test_weights_of_another_architecture_are_refused() -> None:
    require_package()
    found = locate_weights("efficientnet_lite0")
    with pytest.raises(WeightsMismatchError, match="do not fit"):
        create_pretrained_backbone("efficientnet_lite2", weights=found.path)


# ---- the real weights are ImageNet weights --------------------------------------------------------


def test_imagenet_canary_ant_and_bee_photos() -> None:
    require_package()
    require((DATASETS / "hymenoptera").is_dir(), f"hymenoptera not found at {DATASETS}")
    from picsift.data.images import load_rgb, resize_square

    model, dc, found = create_pretrained_backbone("efficientnet_lite0", num_classes=None)
    assert found.kind == "package"
    ant = DATASETS / "hymenoptera" / "val" / "ants" / "10308379_1b6c72e180.jpg"
    bee = DATASETS / "hymenoptera" / "val" / "bees" / "10870992_eebeeb3a12.jpg"
    x = np.stack([resize_square(load_rgb(p), dc.storage_size) for p in (ant, bee)])
    logits = embed(model, x, dc, backend="eager")
    assert logits.shape == (2, 1000)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert IMAGENET_ANT in top5[0] and IMAGENET_BEE in top5[1]


# ---- sources: absent, corrupt, explicit ------------------------------------------------------------


@pytest.mark.usefixtures("no_weights_anywhere")
def test_no_weights_anywhere_is_a_clear_error_never_random_weights() -> None:
    assert available_pretrained() == []
    for call in (
        lambda: locate_weights("efficientnet_lite0"),
        lambda: create_pretrained_backbone("efficientnet_lite0"),
    ):
        with pytest.raises(WeightsNotAvailableError) as e:
            call()
        msg = str(e.value)
        assert "no pretrained weights for efficientnet_lite0" in msg
        assert "pip install 'picsift[pretrained]'" in msg and "--weights PATH" in msg


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ModelNotFoundError) as e:
        get_pretrained_spec("efficientnet_lte0")
    assert str(e.value).startswith("no pretrained backbone named 'efficientnet_lte0' (did you mean efficientnet_lite0")


def _fake_installed_package(root: Path, weights: Path) -> importlib.metadata.Distribution:
    """A real on-disk distribution (dist-info + package folder) holding `weights` as its weights file."""
    target = root / LITE0.module / LITE0.filename
    target.parent.mkdir(parents=True)
    shutil.copyfile(weights, target)
    info = root / f"{LITE0.module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {LITE0.package}\nVersion: 0.1.0\n")
    return importlib.metadata.PathDistribution(info)


def test_corrupted_package_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_package()
    real = locate_weights("efficientnet_lite0").path
    assert real is not None
    corrupt = tmp_path / "corrupt.pth"
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in tensor data: torch still reads it
    corrupt.write_bytes(bytes(data))
    assert len(torch.load(corrupt, weights_only=True)) == 296
    dist = _fake_installed_package(tmp_path / "site", corrupt)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)
    found = locate_weights("efficientnet_lite0")
    assert found.path is not None and found.path.parent.parent == tmp_path / "site" / LITE0.module
    with pytest.raises(WeightsIntegrityError, match=f"expected {LITE0.sha256}"):
        create_pretrained_backbone("efficientnet_lite0")
    # an explicit file with its expected digest given is checked the same way
    with pytest.raises(WeightsIntegrityError):
        create_pretrained_backbone("efficientnet_lite0", weights=corrupt, sha256=LITE0.sha256)


@pytest.mark.usefixtures("no_weights_anywhere")
def test_explicit_timm_safetensors_file_loads_without_any_package(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = timm_lite0()
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model, dc, found = create_pretrained_backbone("efficientnet_lite0", num_classes=5, weights=path)
    assert found.kind == "file" and found.source == f"file {path}"
    assert dc.input_size == 224 and dc.mean == (0.5, 0.5, 0.5) and dc.interpolation == "bicubic"
    assert torch.equal(model.state_dict()["conv_head.weight"], source.state_dict()["conv_head.weight"])
    assert model.get_classifier().out_features == 5
    with pytest.raises(WeightsNotAvailableError, match="does not exist"):
        create_pretrained_backbone("efficientnet_lite0", weights=tmp_path / "absent.pth")


def test_explicit_efficientnet_pytorch_file_gives_the_package_model(tmp_path: Path, lite0_features) -> None:
    packaged, dc = lite0_features
    real = locate_weights("efficientnet_lite0").path
    assert real is not None
    copy = tmp_path / "lite0.pth"
    shutil.copyfile(real, copy)
    model, _, found = create_pretrained_backbone("efficientnet_lite0", weights=copy, sha256=LITE0.sha256)
    assert found.kind == "file" and found.key_format == "auto"
    for k, v in packaged.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


# ---- embeddings ----------------------------------------------------------------------------------


def test_embed_backends_agree_and_accept_batches(lite0_features) -> None:
    model, dc = lite0_features
    small = dc.with_size(64)  # the weights work at any size; small keeps the test fast
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, small.storage_size, small.storage_size, 3), dtype=np.uint8)
    ref = embed(model, x, small, batch_size=2, backend="eager")
    assert ref.shape == (5, 1280) and ref.dtype == np.float32
    for backend in ("channels_last", "onnx"):
        out = embed(model, x, small, batch_size=3, backend=backend)
        np.testing.assert_allclose(out, ref, atol=2e-3, rtol=1e-3)
    bf16 = embed(model, x, small, backend="bf16")
    cos = (bf16 * ref).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99
    embedder = make_embedder(model, small, backend="eager")
    batches = embed(embedder, iter([x[:2], x[2:]]))
    np.testing.assert_allclose(batches, ref, atol=1e-4)  # other batch sizes: other kernel blockings
    # other sizes are resized to storage size and centre-cropped
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    assert embed(embedder, big).shape == (5, 1280)
    assert embed(embedder, np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 0)


def test_embed_rejects_wrong_input_and_backend(lite0_features) -> None:
    model, dc = lite0_features
    with pytest.raises(ConfigError, match=r"uint8 images of shape \(N, H, W, 3\); got float32 \(2, 8, 8, 3\)"):
        embed(model, np.zeros((2, 8, 8, 3), np.float32), dc, backend="eager")
    with pytest.raises(ConfigError, match="unknown embedding backend 'tensorrt'"):
        make_embedder(model, dc, backend="tensorrt")


def test_the_pretrained_extra_installs_exactly_the_backbones_whose_hint_names_it() -> None:
    """`pip install 'picsift[pretrained]'` is what the "no weights" message tells users to run: the extra in
    pyproject.toml must hold every backbone marked in_extra, at a pinned version, and no other."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extra = {req.split("==")[0] for req in pyproject["project"]["optional-dependencies"]["pretrained"]}
    assert extra == {spec.package for spec in KNOWN.values() if spec.in_extra}
    assert all("==" in req for req in pyproject["project"]["optional-dependencies"]["pretrained"])
    for spec in KNOWN.values():
        assert spec.pip_hint.startswith("pip install 'picsift[pretrained]'") == spec.in_extra
        assert spec.package in spec.pip_hint
