"""Parts of the fast recipe: batch augmentation, schedule, thread policy, whitening, ONNX export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from picsift.errors import ConfigError
from picsift.models.fastcnn import FastCNN, default_depth
from picsift.models.registry import create_model
from picsift.train.fast.augment import BatchAugmenter
from picsift.train.fast.freeze import freeze_blocks, freeze_stages, frozen_at
from picsift.train.fast.optim import lr_factor, make_optimizers, orthogonalise
from picsift.train.fast.recipe import FastRecipe
from picsift.train.fast.resize import resize_stages, shrink, size_at
from picsift.train.fast.runtime import (
    COMPILE_MIN_BUDGET_S,
    busy_cores,
    choose_threads,
    cudnn_autotune,
    maybe_compile,
    usable_cores,
)
from picsift.train.fast.sizing import (
    cpu_batch_size,
    default_batch_size,
    model_kwargs_for,
    probe_batch,
    widen_for_budget,
)


def recipe(**params: Any) -> FastRecipe:
    return FastRecipe.from_params(params)


def make_aug(translate: int = 2, n: int = 64, **kw: Any) -> tuple[BatchAugmenter, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(n)  # label = image index, to find each image again
    aug = BatchAugmenter(
        images,
        labels,
        (0.0, 0.0, 0.0),
        (1 / 255, 1 / 255, 1 / 255),
        batch_size=16,
        translate=translate,
        generator=g,
        channels_last=False,
        **kw,
    )
    return aug, images


def test_batches_are_shifted_windows_of_the_reflect_padded_image() -> None:
    aug, images = make_aug()
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="reflect")
    seen = 0
    for x, y, _ in aug.epoch(0):
        assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32
        for xi, yi in zip(x, y, strict=True):
            p = padded[int(yi)]
            windows = [p[:, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
            windows += [w.flip(-1) for w in windows]
            assert any(torch.equal(xi, w) for w in windows)
            seen += 1
    assert seen == 64  # every image once per epoch (64 = 4 full batches)


def test_flips_alternate_between_epochs() -> None:
    aug, images = make_aug(translate=0)
    state = {}
    for epoch in range(2):
        for x, y, _ in aug.epoch(epoch):
            for xi, yi in zip(x, y, strict=True):
                state.setdefault(int(yi), []).append(not torch.equal(xi, images[int(yi)].float()))
    flipped = np.array([v for v in state.values()])
    assert (flipped[:, 0] != flipped[:, 1]).all()  # each image seen both ways over two epochs
    assert 0.2 < flipped[:, 0].mean() < 0.8


def test_colour_jitter_is_a_bounded_per_image_brightness_and_contrast_change() -> None:
    aug, images = make_aug(translate=0, flip=False, jitter=0.2)
    factors = []
    for x, y, _ in aug.epoch(0):
        for xi, yi in zip(x, y, strict=True):
            plain = images[int(yi)].float()
            # xi = (plain + shift) * scale: recover both by least squares, then check the fit is exact.
            a = torch.stack([plain.flatten(), torch.ones(plain.numel())], 1)
            scale, offset = torch.linalg.lstsq(a, xi.flatten().unsqueeze(1)).solution.flatten().tolist()
            assert torch.allclose(a @ torch.tensor([scale, offset]), xi.flatten(), atol=1e-3)
            factors.append((float(scale), float(offset / scale)))
    scales, shifts = np.array(factors).T
    assert np.all(np.abs(scales - 1) <= 0.2 + 1e-5) and np.all(np.abs(shifts) <= 0.2 + 1e-5)
    assert scales.std() > 0.05 and shifts.std() > 0.05  # drawn per image, not per batch
    plain_aug, _ = make_aug(translate=0, flip=False)
    x0, y0, _ = next(iter(plain_aug.epoch(0)))
    assert torch.equal(x0, images[y0].float())  # no jitter unless asked


def test_activation_is_a_model_argument() -> None:
    silu = FastCNN(3, widths=[16, 32, 32], input_size=16, activation="silu")
    assert isinstance(silu.blocks[0].act, torch.nn.SiLU)
    assert isinstance(FastCNN(3, widths=[16, 32, 32], input_size=16).blocks[0].act, torch.nn.GELU)  # old models
    with pytest.raises(ValueError, match="activation"):
        FastCNN(3, activation="relu6")


def test_pool_first_blocks_keep_shapes_and_cost_fewer_flops() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, 32, 32)

    def flops(model: FastCNN) -> tuple[int, tuple[int, ...]]:
        with FlopCounterMode(display=False) as counter:
            out = model(x)
        return counter.get_total_flops(), tuple(out.shape)

    plain, plain_shape = flops(FastCNN(10))
    cheap, cheap_shape = flops(FastCNN(10, pool_first=2))
    assert cheap_shape == plain_shape == (2, 10)
    assert 0.5 < cheap / plain < 0.65  # the two widest first convolutions run on a quarter of the pixels
    assert [block.pool_first for block in FastCNN(10, pool_first=2).blocks] == [False, True, True]
    assert model_kwargs_for(50_000, 32, 10, recipe(pool_first=2))["pool_first"] == 2
    assert "pool_first" not in model_kwargs_for(
        50_000, 32, 10, FastRecipe()
    )  # runs saved before the option rebuild as they were
    with pytest.raises(ValueError, match="pool_first"):
        FastCNN(10, pool_first=4)
    with pytest.raises(ConfigError, match="pool_first must be between 0 and the depth"):  # a clear error at the CLI
        create_model("fastcnn", num_classes=10, pool_first=4)


def test_third_conv_deepens_the_last_blocks_at_their_pooled_size() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, 32, 32)

    def flops(model: FastCNN) -> int:
        with FlopCounterMode(display=False) as counter:
            assert model(x).shape == (2, 10)
        return counter.get_total_flops()

    deeper = FastCNN(10, third_conv=1)
    assert [block.conv3 is not None for block in deeper.blocks] == [False, False, True]
    assert 1.03 < flops(deeper) / flops(FastCNN(10)) < 1.06  # a 256 -> 256 conv on 3x3 pixels: cheap
    assert "blocks.2.conv3.weight" in deeper.state_dict() and "blocks.2.conv3.weight" not in FastCNN(10).state_dict()
    kwargs = model_kwargs_for(50_000, 32, 10, recipe(third_conv=1))
    rebuilt = create_model("fastcnn", num_classes=10, **kwargs)
    rebuilt.load_state_dict(deeper.state_dict())  # the kwargs rebuild the same architecture
    with pytest.raises(ConfigError, match="third_conv must be between 0 and the depth"):
        create_model("fastcnn", num_classes=10, third_conv=4)


def test_model_params_of_the_wrong_kind_are_errors_that_name_the_key() -> None:
    assert recipe(translate="3").translate == 3 and FastRecipe().translate is None  # None: the recipe chooses
    assert recipe(jitter=0.15).jitter == 0.15
    with pytest.raises(ConfigError, match="jitter: expected a number, got 'lots'"):
        recipe(jitter="lots")
    # One line at the CLI, not a traceback, for every setting:
    for bad in ({"pool_first": "two"}, {"depth": 2.5}, {"widths": 64}, {"widths": [64, "wide"]}):
        with pytest.raises(ConfigError, match=f"model_params {next(iter(bad))}: expected a"):
            FastRecipe.from_params(bad)
    with pytest.raises(ConfigError, match="low_res_size: expected a whole number"):
        recipe(low_res_size=20.5)
    with pytest.raises(ConfigError, match="prune_until: expected a number"):
        recipe(prune_until=float("nan"))
    for key, value, expected in (("amp", "maybe", "true or false"), ("compile", "sometimes", "true, false or auto")):
        with pytest.raises(ConfigError, match=f"model_params {key}: expected {expected}"):
            FastRecipe.from_params({key: value})
    assert (recipe(compile="true").compile, recipe(compile=False).compile, FastRecipe().compile) == (
        True,
        False,
        "auto",
    )


def test_unknown_recipe_settings_are_refused_with_the_nearest_known_one() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown fastcnn setting 'prnue': did you mean 'prune'\? \(known: .*prune_until"
    ):
        recipe(prnue=0.5)
    with pytest.raises(ConfigError, match="'filter_rl': did you mean 'filter_lr'"):
        recipe(filter_rl=0.3)
    # A training setting written under model_params is pointed to its place, not silently dropped.
    with pytest.raises(ConfigError, match="'label_smoothing': did you mean the training setting 'label_smoothing'"):
        recipe(label_smoothing=0.1)
    with pytest.raises(ConfigError, match=r"unknown fastcnn setting 'zzz' \(known: "):
        recipe(zzz=1)
    with pytest.raises(ConfigError, match="not both"):
        recipe(whiten_bias_until=0.2, whiten_bias_fraction=0.3)


def test_every_recipe_setting_has_a_reader() -> None:
    import dataclasses

    from picsift.train.fast import recipe as module

    assert set(module._READERS) == {f.name for f in dataclasses.fields(FastRecipe)} == module.KNOWN


def test_recipe_hyper_parameters_are_overridden_by_name_in_model_params() -> None:
    hyper = recipe(filter_lr="0.12", filter_momentum=0.8, whiten_bias_until=0.1, widths=[8, 8, 8])
    assert (hyper.filter_lr, hyper.filter_momentum, hyper.whiten_bias_until) == (0.12, 0.8, 0.1)
    assert hyper.widths == (8, 8, 8)
    assert hyper.head_lr == FastRecipe().head_lr  # untouched fields keep the recipe's values
    assert recipe(whiten_bias_fraction=0.2).whiten_bias_until == 0.2  # the other name of the same setting
    model = create_model("fastcnn", num_classes=3, widths=[8, 8, 8])
    sgd, ortho = make_optimizers(model, hyper, batch_size=hyper.reference_batch)
    assert ortho.param_groups[0]["lr"] == pytest.approx(0.12) and ortho.param_groups[0]["momentum"] == 0.8
    with pytest.raises(ConfigError, match="model_params reference_batch: expected a whole number"):
        recipe(reference_batch=100.5)
    for bad, need in (
        ({"whiten_bias_until": 0}, "above 0"),
        ({"momentum": 1.0}, r"in \[0, 1\)"),
        ({"wd_per_example": -1e-6}, "of 0 or more"),
    ):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))}: expected a number {need}"):
            FastRecipe.from_params(bad)


def test_schedule_warms_up_decays_to_zero() -> None:
    assert lr_factor(0.0, 0.02) < lr_factor(0.02, 0.02) == 1.0
    assert lr_factor(0.5, 0.02) > lr_factor(0.9, 0.02) > lr_factor(1.0, 0.02) == 0.0


def test_orthogonalise_flattens_the_spectrum() -> None:
    g = torch.randn(64, 288) * torch.logspace(0, 3, 288)
    s = torch.linalg.svdvals(orthogonalise(g))
    assert s.max() < 1.6 and s.min() > 0.3


def test_thread_policy_uses_free_cores() -> None:
    assert choose_threads(2, 0.1) == 2
    assert choose_threads(2, 10.0) == 1
    assert choose_threads(16, 4.0) == 12


def test_depth_adapts_to_input_size() -> None:
    assert default_depth(32) == 3 and default_depth(16) == 3 and default_depth(64) == 4
    for size in (16, 32, 48, 64):
        assert FastCNN(5, widths=[8, 16, 16], input_size=size).eval()(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_whitening_decorrelates_patches() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, 3, 12, 12, generator=g)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])
    x = torch.einsum("ij,njhw->nihw", mix, base)
    x = x + 0.5 * x.roll(1, dims=-1)  # correlated neighbours
    m = FastCNN(2, widths=[8, 8, 8], input_size=12)
    assert m.init_whitening(x) == 0
    out = torch.nn.functional.conv2d(x, m.whiten.weight[:12]).permute(1, 0, 2, 3).reshape(12, -1)
    cov = out @ out.T / out.shape[1]
    assert torch.allclose(cov, torch.eye(12), atol=0.05)


def test_onnx_export_matches(tmp_path: Path) -> None:
    import onnxruntime as ort

    m = FastCNN(3, widths=[16, 32, 32], input_size=16).eval()
    m.init_whitening(torch.randn(50, 3, 16, 16))
    x = torch.randn(4, 3, 16, 16)
    path = tmp_path / "m.onnx"
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(m, (x,), str(path), input_names=["x"], opset_version=17, **kwargs)  # type: ignore[arg-type]
    (y,) = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    assert np.abs(y - m(x).detach().numpy()).max() < 1e-4


def test_resize_stages_defaults_and_overrides() -> None:
    assert resize_stages(32, FastRecipe(), budgeted=True) == [(0.5, 24)]  # budgeted runs start small
    assert resize_stages(32, FastRecipe(), budgeted=False) == []  # epoch-count runs do not
    assert resize_stages(32, recipe(low_res_until=0.3, low_res_size=20), budgeted=False) == [(0.3, 20)]
    assert resize_stages(16, FastRecipe(), budgeted=True) == []  # nothing smaller than 16 px is worth it
    # Explicit stages are sorted; sizes at or above the input, or below 16 px, are dropped.
    stages = resize_stages(32, recipe(resize=[[0.6, 24], [0.3, 20], [0.8, 32], [0.1, 8]]), budgeted=False)
    assert stages == [(0.3, 20), (0.6, 24)]
    assert [size_at(stages, p, 32) for p in (0.0, 0.29, 0.3, 0.59, 0.6, 1.0)] == [20, 20, 24, 24, 32, 32]
    with pytest.raises(ConfigError, match="until, size"):
        recipe(resize=[0.5])


def test_freeze_stages_parse_sort_and_keep_the_last_block_learning() -> None:
    assert freeze_stages(FastRecipe(), depth=3) == []  # off unless asked for
    stages = freeze_stages(recipe(freeze=[[0.85, 2], [0.5, 1], [0.9, 5], [1.0, 1], [0.2, 0]]), depth=3)
    assert stages == [(0.5, 1), (0.85, 2), (0.9, 2)]  # sorted; capped below the depth; p >= 1 and 0 blocks dropped
    assert [frozen_at(stages, p) for p in (0.0, 0.49, 0.5, 0.84, 0.85, 1.0)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ConfigError, match=r"freeze: expected a list of \[from, blocks\] pairs"):
        recipe(freeze=[0.5, 1])
    with pytest.raises(ConfigError, match="freeze: expected a whole number"):
        recipe(freeze=[[0.5, "first"]])


def test_a_frozen_block_keeps_its_weights_and_is_skipped_by_backward() -> None:
    torch.manual_seed(0)
    model = create_model("fastcnn", num_classes=3, widths=[8, 16, 16], input_size=16)
    sgd, ortho = make_optimizers(model, FastRecipe(), batch_size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    freeze_blocks(model, 1)
    x = torch.randn(32, 3, 16, 16)
    seen: list[bool] = []
    model.blocks[0].register_forward_hook(lambda mod, inp, out: seen.append(out.requires_grad))
    model(x, whiten_bias_grad=False).square().sum().backward()
    sgd.step()
    ortho.step()
    assert seen == [False]  # nothing before or in the frozen block needs gradients: autograd skips it
    after = model.state_dict()
    for name in ("blocks.0.conv1.weight", "blocks.0.conv2.weight", "blocks.0.norm1.bias"):
        assert torch.equal(after[name], before[name]) and model.get_parameter(name).grad is None
    for name in ("blocks.1.conv1.weight", "blocks.2.norm2.bias", "head.weight"):
        assert not torch.equal(after[name], before[name])  # the blocks after it still learn


def test_shrink_keeps_layout_and_content() -> None:
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    small = shrink(x, 24)
    assert small.shape == (4, 3, 24, 24) and small.is_contiguous(memory_format=torch.channels_last)
    flat = torch.full((2, 3, 32, 32), 0.7)
    assert torch.allclose(shrink(flat, 24), torch.full((2, 3, 24, 24), 0.7), atol=1e-5)


def test_cpu_batch_size_gives_about_80_steps_on_large_sets() -> None:
    sizes = [cpu_batch_size(n) for n in (100, 1000, 2000, 10_000, 50_000, 1_000_000)]
    assert sizes == sorted(sizes) and sizes[-1] == 2000
    assert cpu_batch_size(1000) == default_batch_size(1000)  # small sets keep the default
    assert 60 <= 50_000 // cpu_batch_size(50_000) <= 100


def test_compile_where_it_pays_and_never_inside_a_short_budget() -> None:
    model = FastCNN(3, widths=[8, 8, 8], input_size=16)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")  # torch.compile is lazy: no GPU is touched here
    assert maybe_compile(model, cuda, "auto", None) is not model  # unbudgeted GPU runs compile
    assert maybe_compile(model, cuda, "auto", COMPILE_MIN_BUDGET_S) is not model
    assert maybe_compile(model, cuda, "auto", 30.0) is model  # compiling would eat a 30 s budget
    assert maybe_compile(model, cpu, "auto", None) is model  # oneDNN already runs the convolutions
    assert maybe_compile(model, cuda, True, 30.0) is not model and maybe_compile(model, cpu, "true", None) is not model


def test_cudnn_autotune_is_on_for_cuda_training_only_and_restored() -> None:
    before = torch.backends.cudnn.benchmark
    with cudnn_autotune(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark == before
    with cudnn_autotune(torch.device("cuda")):  # a flag only: no GPU is touched
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == before


def test_throughput_probe_uses_a_small_batch_on_a_cpu_and_the_training_batch_on_a_gpu() -> None:
    assert probe_batch(torch.device("cpu"), 50_000) == 64
    assert probe_batch(torch.device("cuda"), 50_000) == default_batch_size(50_000) == 2000
    assert probe_batch(torch.device("cuda"), 500) == default_batch_size(500) == 32


def test_busy_cores_sees_a_spinning_process() -> None:
    import subprocess
    import sys

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        busy = busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert 0.7 <= busy <= usable_cores() + 1e-6


def test_orthogonalise_in_bf16_is_close_to_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.randn(64, 288)
    monkeypatch.setenv("PICSIFT_CPU_BF16", "0")
    exact = orthogonalise(g)
    monkeypatch.setenv("PICSIFT_CPU_BF16", "1")
    fast = orthogonalise(g)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    assert float((fast - exact).norm() / exact.norm()) < 0.03


def test_batchnorm_on_bf16_activations_matches_fp32_statistics() -> None:
    """The fast CNN's BatchNorm takes bf16 activations without casting: PyTorch must accumulate its
    statistics and gradients in fp32, or a channel with a large mean and a small spread turns to noise."""
    from picsift.models.fastcnn import FrozenScaleBatchNorm

    torch.manual_seed(0)
    norm = FrozenScaleBatchNorm(16)
    x = (torch.randn(64, 16, 8, 8) * 0.02 + 5).bfloat16().contiguous(memory_format=torch.channels_last)
    grad = torch.randn(64, 16, 8, 8).bfloat16().contiguous(memory_format=torch.channels_last)
    native, cast = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = norm(native)
    out.backward(grad)
    ref = norm(cast.float())
    ref.backward(grad.float())
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05  # within bf16 rounding of values ~ +-3
    assert ref.std() > 0.9  # the channel's tiny spread was normalised, not lost
    rel = (native.grad.float() - cast.grad).norm() / cast.grad.norm()
    assert rel < 1e-2


def test_pruner_drops_only_well_learned_examples_and_reweights_the_rest() -> None:
    from picsift.train.fast.prune import LossPruner

    n = 10_000
    pruner = LossPruner(n, ratio=0.5, until=0.85, generator=torch.Generator().manual_seed(0))
    assert len(pruner.plan(0.0)) == n  # nothing seen yet: every example trains
    losses = torch.linspace(0.0, 2.0, n)  # mean 1.0: the first half is well learned
    assert float(pruner.weigh(torch.arange(n), losses)) == pytest.approx(float(losses.sum()))  # weights 1 so far
    kept = pruner.plan(0.3)
    well = kept[kept < n // 2]
    assert torch.equal(kept[kept >= n // 2], torch.arange(n // 2, n))  # hard examples always train
    assert abs(len(well) - n // 4) < 250  # about half of the easy half sits this epoch out
    assert torch.all(pruner.weight[well] == 2.0) and torch.all(pruner.weight[n // 2 :] == 1.0)
    assert abs(float(pruner.weight[kept].sum()) - n) < 500  # unbiased: the weighted count is the full set's
    assert len(pruner.plan(0.9)) == n and torch.all(pruner.weight == 1.0)  # the end trains on everything


def test_pruner_is_on_for_budgeted_runs_and_configurable() -> None:
    from picsift.train.fast.prune import pruner_from

    g = torch.Generator().manual_seed(0)
    assert pruner_from(FastRecipe(), 100, budgeted=False, generator=g) is None  # an epoch count means full epochs
    default = pruner_from(FastRecipe(), 100, budgeted=True, generator=g)
    assert default is not None and (default.ratio, default.until) == (0.5, 0.85)
    assert pruner_from(recipe(prune=0), 100, budgeted=True, generator=g) is None
    pruner = pruner_from(recipe(prune=0.3, prune_until=0.7), 100, budgeted=False, generator=g)
    assert pruner is not None and (pruner.ratio, pruner.until) == (0.3, 0.7)
    with pytest.raises(ConfigError, match=r"model_params prune: expected a number in \[0, 1\), got 1.5"):
        recipe(prune=1.5)
    with pytest.raises(ConfigError, match="prune_until: expected a number of 0 or more"):
        recipe(prune_until=-0.5)


def test_long_budgets_on_large_sets_buy_width() -> None:
    base = {"widths": [64, 256, 256], "input_size": 32}
    assert widen_for_budget(base, 50_000, 20.0, FastRecipe())["widths"] == [96, 384, 384]  # e.g. 30 minutes on CIFAR-10
    assert widen_for_budget(base, 50_000, 9.9, FastRecipe())["widths"] == [96, 384, 384]  # the lowest 30-minute reading
    assert widen_for_budget(base, 50_000, 8.6, FastRecipe()) == base  # 20 minutes on CIFAR-10 (a tie) keeps the net
    assert widen_for_budget(base, 50_000, 4.0, FastRecipe()) == base  # and so does 10 minutes (where width lost)
    assert widen_for_budget(base, 5_000, 50.0, FastRecipe()) == base  # a small set would only overfit a wider one
    assert widen_for_budget(base, 50_000, 20.0, recipe(widths=[64, 256, 256])) == base  # explicit widths win
