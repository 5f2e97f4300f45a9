"""Configuration as frozen dataclasses, one per stage. Defaults < YAML file < CLI flags.

Each run dumps its resolved config into `config.json`, so a run can be reproduced exactly.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from picsift.errors import ConfigError

C = TypeVar("C")
N = TypeVar("N", int, float)

MAX_EPOCHS = 100_000
MAX_MINUTES = 60 * 24 * 365  # a time budget of a year at most
SEED_MAX = 2**32 - 1  # numpy's random generators take seeds in [0, 2**32)
PORT_MAX = 65535


def show_number(value: Any) -> str:
    """`value` for an error message, short whatever it is: "nan", "-1e+308", "a whole number of 400 digits"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _short(value)
    if isinstance(value, int):
        if abs(value) < 10**15:
            return str(value)
        digits = int(value.bit_length() * math.log10(2)) + 1  # str() of a huge int is slow, or refused
        return f"a {'negative ' if value < 0 else ''}whole number of about {digits} digits"
    text = repr(value)  # "2.0", "nan", "-1e+308"
    return text if len(text) <= 20 else f"{value:.6g}"


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        if not low_open and not high_open:
            return f"from {low:g} to {high:g}"
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"greater than {low:g}" if low_open else f"at least {low:g}"
    if high is not None:
        return f"less than {high:g}" if high_open else f"at most {high:g}"
    return ""


def check_number(
    value: N,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    whole: bool = False,
) -> N:
    """`value` when it is a finite number (a whole number with `whole`) within [low, high] (each bound exclusive
    with `low_open`/`high_open`; None: unbounded); else ConfigError "NAME must be a finite number in (0, 1],
    got nan". The message states the valid range and never echoes a huge value verbatim (`show_number`).

    The one check every numeric setting goes through: config `validate()` methods, API arguments, server
    settings. NaN and infinities are refused always (a NaN compares false with every bound, so `x <= 0`
    checks let it through)."""
    kind = "a whole number" if whole else "a finite number"
    expected = f"{kind} {_range_text(low, high, low_open, high_open)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise ConfigError(f"{name} must be {expected}, got {show_number(value)}")
    in_range = (low is None or (value > low if low_open else value >= low)) and (
        high is None or (value < high if high_open else value <= high)
    )
    if not in_range or (not whole and not math.isfinite(value)):  # NaN fails every comparison: not in range
        raise ConfigError(f"{name} must be {expected}, got {show_number(value)}")
    return value


def check_optional(value: N | None, name: str, **bounds: Any) -> N | None:
    """`check_number` for a setting that may be None ("not given", "the default")."""
    return None if value is None else check_number(value, name, **bounds)


def check_port(value: int, name: str = "--port", *, any_free: bool = False) -> int:
    """A TCP port: a whole number from 1 to 65535 (0 too with `any_free`: the system picks a free one).
    ConfigError naming `name` and the valid range otherwise."""
    return check_number(value, name, low=0 if any_free else 1, high=PORT_MAX, whole=True)


def check_seed(value: int, name: str = "--seed") -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what numpy's generators take)."""
    return check_number(value, name, low=0, high=SEED_MAX, whole=True)


@dataclass(frozen=True)
class ImportConfig:
    """`picsift import`: the source, workspace, forced label or split, split seed and fractions, URL download limits
    and the archive expansion cap."""

    source: str
    workspace: Path | None = None
    label: str | None = None  # force a label for every image of a flat folder
    split: str | None = None  # force a split
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    url_timeout_s: float = 15.0
    url_retries: int = 2
    url_max_bytes: int = 20 * 1024 * 1024
    archive_max_expansion: float = 100.0  # an archive may expand to this many times its size (zip bombs)

    def validate(self) -> ImportConfig:
        """Self, after checking the seed, fractions, URL download limits and the expansion cap (`check_number`:
        NaN and infinities refused too). ConfigError naming the flag and the valid range."""
        check_seed(self.seed)
        check_number(self.val_fraction, "--val-fraction", low=0, high=1, high_open=True)
        check_number(self.test_fraction, "--test-fraction", low=0, high=1, high_open=True)
        check_number(self.url_timeout_s, "--timeout (seconds)", low=0, low_open=True, high=MAX_MINUTES * 60)
        check_number(self.url_retries, "--retries", low=0, high=100, whole=True)
        check_number(self.url_max_bytes, "url_max_bytes", low=1, whole=True)
        check_number(self.archive_max_expansion, "--max-expansion", low=1)
        return self


@dataclass(frozen=True)
class TrainConfig:
    """`picsift train`: model, epochs or time budget, optimiser and schedule, augmentation, balancing, device and
    what to fit after training."""

    workspace: Path | None = None
    model: str = "auto"  # a registry name, or "auto": chosen from the data (picsift.train.auto)
    epochs: int | None = None  # None: chosen by the recipe (or fitted to --time-budget)
    time_budget_min: float | None = None
    seed: int = 0
    pretrained: bool = False
    weights: str | None = None
    image_size: int | None = None  # None: the model's data config (the fast CNN adapts to the data)
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str = "adamw"  # adamw | sgd (nesterov)
    schedule: str = "onecycle"  # onecycle | cosine
    label_smoothing: float | None = None  # None: the recipe's own (0.1; the fast CNN's recipe 0.2)
    augment: str = "flip-crop"  # none | flip-crop | trivial | randaugment
    early_stopping: int = 0  # patience in epochs; 0 = off
    resume: str | None = None  # run id/folder whose checkpoint to continue
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    num_workers: int = 0
    features: str | None = None  # classical models: the feature extractor
    model_params: dict[str, Any] = field(default_factory=dict)  # extra model-specific hyper-parameters
    balance: str = "none"  # none | auto | weights | sampler
    mixup: float = 0.0
    cutmix: float = 0.0
    random_erasing: float = 0.0
    tta: bool = False  # choose test-time views on validation data after training (picsift.api.train_model)
    snapshots: int = 0  # keep the weights of the last N epochs in snapshots/ (for snapshot ensembles)
    with_feedback: bool = False
    run_name: str | None = None
    strict: bool = False  # stop (exit 2) when an image file is missing or no longer decodes, instead of skipping it
    calibrate: bool = True  # fit a temperature on validation after training (the inference spec)

    def validate(self) -> TrainConfig:
        """Self, after checking every numeric setting's range (`check_number`: NaN and infinities refused too),
        optimizer, schedule, augment and balance. ConfigError naming the flag and the valid range."""
        self._check_numbers()
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"--optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in ("onecycle", "cosine"):
            raise ConfigError(f"--schedule must be onecycle or cosine, got {self.schedule!r}")
        if self.augment not in ("none", "flip-crop", "trivial", "randaugment"):
            raise ConfigError(f"--augment must be one of none, flip-crop, trivial, randaugment; got {self.augment!r}")
        if self.balance not in ("none", "auto", "weights", "sampler"):
            raise ConfigError(f"--balance must be none, auto, weights or sampler; got {self.balance!r}")
        return self

    def _check_numbers(self) -> None:
        check_optional(self.epochs, "--epochs", low=1, high=MAX_EPOCHS, whole=True)
        check_optional(self.time_budget_min, "--time-budget (minutes)", low=0, low_open=True, high=MAX_MINUTES)
        check_seed(self.seed)
        check_optional(self.image_size, "--image-size (pixels)", low=16, high=4096, whole=True)
        check_optional(self.batch_size, "--batch-size", low=1, high=65536, whole=True)
        check_optional(self.lr, "--lr", low=0, low_open=True)
        check_optional(self.weight_decay, "--weight-decay", low=0)
        check_optional(self.label_smoothing, "--label-smoothing", low=0, high=1, high_open=True)
        check_number(self.early_stopping, "--early-stopping (epochs; 0: off)", low=0, high=MAX_EPOCHS, whole=True)
        check_number(self.num_workers, "num_workers", low=0, high=256, whole=True)
        check_number(self.mixup, "mixup (alpha; 0: off)", low=0)
        check_number(self.cutmix, "cutmix (alpha; 0: off)", low=0)
        check_number(self.random_erasing, "random_erasing (probability)", low=0, high=1)
        check_number(self.snapshots, "--snapshots (epochs; 0: off)", low=0, high=MAX_EPOCHS, whole=True)
        for key, value in self.model_params.items():  # each model checks its own ranges; none takes NaN or inf
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--param {key} must be a finite number, got {show_number(value)}")


@dataclass(frozen=True)
class EvalConfig:
    """`picsift evaluate`: which run and split, batch size, top-k, calibration bins, report gallery size, TTA."""

    workspace: Path | None = None
    run: str | None = None  # run id or folder; None: the latest run
    split: str = "auto"  # auto (test if the run has one, else val) | test | val
    device: str = "auto"
    batch_size: int = 256
    top_k: tuple[int, ...] = (1, 5)
    ece_bins: int = 15
    mistakes: int = 24  # thumbnails in the report's gallery of confident mistakes
    tta: bool = False  # average over the run's chosen test-time views (else flips)
    strict: bool = False  # stop (exit 2) when an image file is missing or no longer decodes, instead of skipping it
    label_url: str | None = None  # the labelling app the report's image links open (None: its default address)

    def validate(self) -> EvalConfig:
        """Self, after checking split, batch size, ece_bins, mistakes and top_k (`check_number`). ConfigError for
        a value out of range."""
        if self.split not in ("auto", "test", "val"):
            raise ConfigError(f"--split must be auto, test or val; got {self.split!r}")
        check_number(self.batch_size, "--batch-size", low=1, high=65536, whole=True)
        check_number(self.ece_bins, "ece_bins", low=1, high=10_000, whole=True)
        check_number(self.mistakes, "mistakes", low=0, high=10_000, whole=True)
        for k in self.top_k:
            check_number(k, "top_k (each value)", low=1, high=10_000, whole=True)
        return self


# The clean stage's rules for which images a label model's probabilities flag: picsift's "fdr" (picsift.curate.labels)
# and cleanlab.filter.find_label_issues's filter_by rules.
LABEL_FILTERS = (
    "auto",
    "fdr",
    "both",
    "prune_by_noise_rate",
    "prune_by_class",
    "confident_learning",
    "predicted_neq_given",
    "low_self_confidence",
    "low_normalized_margin",
)


@dataclass(frozen=True)
class CleanConfig:
    """`picsift clean`: which checks run and their thresholds (defaults tuned on planted CIFAR-10 problems)."""

    workspace: Path | None = None
    checks: tuple[str, ...] = ("duplicates", "quality", "outliers", "labels", "imbalance")
    image_size: int = 64  # decoded square copy every pixel check reads
    include_excluded: bool = False  # also check images already excluded
    near_dup_threshold: float = 0.955  # aligned 16x16 thumbnail correlation
    near_dup_neighbours: int = 20
    phash_max_bits: int = 4
    blur_z: float = 4.0
    dark_p95: float = 64.0
    bright_p05: float = 225.0
    min_side: int = 16
    max_aspect: float = 4.0
    # Embedding for near duplicates, outliers and labels: "auto" (a pretrained backbone when its weights are
    # installed, else "hand"), "hand" (hand-made descriptors) or any picsift.features extractor.
    extractor: str = "auto"
    outlier_k: int = 10
    outlier_z: float = 4.0
    label_folds: int = 5
    # auto: "logistic" on a pretrained embedding; on hand features "cnn" from label_cnn_min_images labelled
    # images up, else "linear" (ridge on the embedding).
    # cnn: picsift's fast CNN per fold within label_cnn_budget_s, ensembled with the linear model.
    # logistic: a cross-validated logistic-regression head (scikit-learn, C = label_c) on the embedding.
    label_model: str = "auto"  # auto | linear | cnn | logistic (or ridge | logreg | mlp on the embedding)
    label_c: float = 0.001  # inverse L2 strength of the logistic head (scikit-learn C; see curate.labels)
    # Embeddings the logistic label model adds to the stage's own, concatenated: "auto" (every other installed
    # pretrained backbone, only when the model on the stage's embedding is weak: under 80% agreement), "none",
    # or a comma list of picsift.features extractors (always added).
    label_extractors: str = "auto"
    label_cnn_budget_s: float = 60.0  # training time for all CNN folds together
    label_cnn_folds: int = 4
    label_cnn_min_images: int = 1000
    # Which images the label model's probabilities flag: "fdr" (the lowest p(given label), as many as keep the
    # estimated share of correct labels among them within label_max_fdr; see curate.labels) or one of
    # cleanlab's find_label_issues rules ("both", "prune_by_noise_rate", "confident_learning", ...); "auto":
    # "both" when the model agrees with at least 80% of the labels (what confident learning assumes), else "fdr".
    label_filter: str = "auto"  # one of LABEL_FILTERS
    label_max_fdr: float = 0.2  # "fdr": the largest estimated share of flagged images whose label is right
    tiny_class: int = 10
    max_imbalance: float = 5.0
    seed: int = 0
    strict: bool = False  # stop (exit 2) when an image file is missing on disk, instead of skipping it
    label_url: str | None = None  # the labelling app the report's image links open (None: its default address)

    def validate(self) -> CleanConfig:
        """Self, after checking the checks named, every numeric setting's range (`check_number`: NaN and
        infinities refused too) and the label model settings. ConfigError for a value out of range."""
        known = ("duplicates", "quality", "outliers", "labels", "imbalance")
        bad = [c for c in self.checks if c not in known]
        if bad or not self.checks:
            raise ConfigError(f"--checks must be 'all' or a comma list of {', '.join(known)}; got {self.checks}")
        self._check_numbers()
        if self.label_model not in ("auto", "linear", "cnn", "logistic", "ridge", "logreg", "mlp"):
            raise ConfigError(
                f"label_model must be auto, linear, cnn, logistic (or ridge, logreg, mlp); got {self.label_model!r}"
            )
        names = [n.strip() for n in str(self.label_extractors).split(",")]
        if not all(names) or (len(names) > 1 and {"auto", "none"} & set(names)):
            raise ConfigError(
                f"label_extractors must be auto, none or a comma list of feature extractors; got {self.label_extractors!r}"
            )
        if self.label_filter not in LABEL_FILTERS:
            raise ConfigError(f"label_filter must be one of {', '.join(LABEL_FILTERS)}; got {self.label_filter!r}")
        return self

    def _check_numbers(self) -> None:
        whole = {"whole": True}
        check_number(self.image_size, "image_size (pixels)", low=16, high=4096, **whole)
        check_number(self.near_dup_threshold, "--near-dup-threshold", low=0, high=1, low_open=True)
        check_number(self.near_dup_neighbours, "near_dup_neighbours", low=1, high=10_000, **whole)
        check_number(self.phash_max_bits, "phash_max_bits", low=0, high=64, **whole)
        check_number(self.blur_z, "blur_z", low=0, low_open=True)
        check_number(self.dark_p95, "dark_p95 (a pixel level)", low=0, high=255)
        check_number(self.bright_p05, "bright_p05 (a pixel level)", low=0, high=255)
        check_number(self.min_side, "min_side (pixels)", low=1, **whole)
        check_number(self.max_aspect, "max_aspect", low=1)
        check_number(self.outlier_k, "outlier_k", low=1, high=10_000, **whole)
        check_number(self.outlier_z, "outlier_z", low=0, low_open=True)
        check_number(self.label_folds, "label_folds", low=2, high=100, **whole)
        check_number(self.label_c, "label_c", low=0, low_open=True)
        check_number(self.label_cnn_budget_s, "label_cnn_budget_s", low=0, low_open=True, high=MAX_MINUTES * 60)
        check_number(self.label_cnn_folds, "label_cnn_folds", low=2, high=100, **whole)
        check_number(self.label_cnn_min_images, "label_cnn_min_images", low=0, **whole)
        check_number(self.label_max_fdr, "label_max_fdr", low=0, high=1, low_open=True, high_open=True)
        check_number(self.tiny_class, "tiny_class", low=0, **whole)
        check_number(self.max_imbalance, "max_imbalance", low=1)
        check_seed(self.seed, "seed")


def to_jsonable(obj: Any) -> Any:
    """`obj` with dataclasses turned into dicts, paths into strings and tuples into lists (recursively)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


_YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError)
# PyYAML raises more than YAMLError on some input: ValueError for `!!int abc` or an integer of over 4300 digits,
# AttributeError for `!!timestamp x`, RecursionError for `[[[[...` nested a thousand deep.


def read_yaml(text: str, where: str) -> Any:
    """`text` parsed as YAML (safe loader: plain data, no Python objects).

    Raises ConfigError "cannot read `where`: ..." for anything PyYAML cannot read, whatever it raises."""
    try:
        return yaml.safe_load(text)
    except _YAML_FAILURES as e:
        if isinstance(e, RecursionError):
            detail = "lists or mappings nested too deeply"
        elif isinstance(e, (AttributeError, TypeError)):
            detail = "a tagged value (!!timestamp, !!binary, ...) that is not valid"
        else:
            detail = str(e) or type(e).__name__
        raise ConfigError(f"cannot read {where}: {detail}") from e


def _key_lines(text: str) -> dict[str, int]:
    """{top-level key: 1-based line} of a YAML mapping, for messages (empty when `text` is not one)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except _YAML_FAILURES:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(hint: Any) -> str:
    """How a field's type reads in a message: "a whole number", "text or nothing (null)"."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return f"{_expected(args[0])} or nothing (null)"
    if typing.get_origin(hint) is tuple:
        return f"a list of {_expected(args[0]).removeprefix('a ').removeprefix('an ')}s, e.g. [{_EXAMPLE[args[0]]}]"
    if typing.get_origin(hint) is dict:
        return "a mapping of setting names to values"
    return _NAMES.get(hint, str(hint))


_NAMES: dict[Any, str] = {
    bool: "true or false",
    int: "a whole number",
    float: "a finite number",
    str: "text",
    Path: "a path",
}
_EXAMPLE: dict[Any, str] = {int: "1, 5", str: "a, b"}
_BAD = object()


def _typed(hint: Any, value: Any) -> Any:
    """`value` as the type `hint` of a config field (a list as a tuple, text as a Path, a whole number as a
    float), or `_BAD` when it is of another kind."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        return _typed(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        items = [_typed(args[0], v) for v in value] if isinstance(value, list) else [_BAD]
        return _BAD if any(v is _BAD for v in items) else tuple(items)
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        return value if ok else _BAD
    if hint is bool:
        return value if isinstance(value, bool) else _BAD
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return _BAD
        try:
            number = float(value)
        except OverflowError:  # a whole number beyond any float
            return _BAD
        return number if math.isfinite(number) else _BAD
    if hint is Path:
        return Path(value) if isinstance(value, str) and value and "\0" not in value else _BAD
    if hint is str:
        return value if isinstance(value, str) else _BAD
    return value  # Any


def _read_settings(cls: type[Any], p: Path) -> dict[str, Any]:
    """The settings of YAML file `p` for config class `cls`, each checked against its field's type.

    Raises ConfigError naming the file, and the line and key of a bad value."""
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config file {p}: not UTF-8 text (byte {e.start})") from e
    loaded = read_yaml(text, f"config file {p}")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {p} must hold a mapping of settings, got {type(loaded).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(str(k) for k in loaded if not isinstance(k, str) or k not in hints)
    if unknown:
        raise ConfigError(f"config file {p}: unknown settings {unknown}; known: {sorted(hints)}")
    lines = _key_lines(text)
    values = {}
    for key, value in loaded.items():
        typed = _typed(hints[key], value)
        if typed is _BAD:
            at = f" line {lines[key]}" if key in lines else ""
            raise ConfigError(f"config file {p}{at}: {key}: expected {_expected(hints[key])}, got {_short(value)}")
        values[key] = typed
    return values


def given_settings(cls: type[Any], path: str | Path | None, **flags: Any) -> dict[str, Any]:
    """The settings a user gave explicitly: a YAML file's keys, then the CLI flags that are not None (the same
    merge as `load_yaml_overrides`, without the defaults). Raises ConfigError for a bad settings file."""
    from_file = _read_settings(cls, Path(path)) if path is not None else {}
    return {**from_file, **{k: v for k, v in flags.items() if v is not None}}


def load_yaml_overrides(cls: type[C], path: str | Path | None, **flags: Any) -> C:
    """Build a config: dataclass defaults, then a YAML file's keys, then CLI flags that were given.

    Raises ConfigError naming the file (and the line and setting) when the file cannot be read as YAML, is not a
    mapping, names an unknown setting, gives a value of the wrong kind (`epochs: abc`, `lr: .nan`) or one the
    config's `validate` refuses (`schedule: linear`)."""
    values: dict[str, Any] = {}
    from_file = _read_settings(cls, Path(path)) if path is not None else {}
    values.update(from_file)
    given = {k: v for k, v in flags.items() if v is not None}
    values.update(given)
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if from_file and validate is not None:
        try:
            validate()
        except ConfigError as e:  # a value of the right kind out of range: say which file it came from
            named = [k for k in from_file if k not in given and (k in str(e) or k.replace("_", "-") in str(e))]
            if named:
                line = _key_lines(Path(path).read_text(encoding="utf-8")).get(named[0])  # type: ignore[arg-type]
                raise ConfigError(f"config file {path}{f' line {line}' if line else ''}: {e}") from e
            raise
    return config
