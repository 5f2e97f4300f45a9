"""`InferenceSpec`: everything applied around a fitted model's own probabilities, in one frozen value.

    temperature      float > 0 or None: p = softmax(log p' / T) (picsift.improve.calibration)
    class_scales     K floats > 0 or None: p' ~ p * s, before the temperature (picsift.improve.thresholds)
    tta_views        the run's chosen test-time views, or None (picsift.improve.tta)
    unknown          the unknown-rejection rule, or None (picsift.improve.unknown); its feature bank is a
                     file beside the spec (RunFolder.unknown_bank_path, or the bundle's copy)
    fits             how each setting was fitted (split, n, metrics before and after), for reports only

It is stored in the run folder as inference.json, and a bundle carries the same document, so a run and its
export apply the same settings. `read_spec` and `write_spec` are the only readers and writers; picsift.improve
fits the settings and writes them, everything else only reads. Runs made before the spec kept each setting
in a file of its own (calibration.json, thresholds.json, tta.json, unknown.json); `read_spec` reads those when
the run has no spec, and never writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from picsift.errors import RunCorruptError
from picsift.runs import RunFolder
from picsift.suggest import closest_names

SPEC_FORMAT = 1
_KEYS = ("format", "temperature", "class_scales", "tta_views", "unknown", "fits")


@dataclass(frozen=True)
class UnknownRule:
    """Reject an image when its confidence or its kNN score (minus the distance from its L2-normalised features
    to the k-th nearest bank vector) falls below the threshold fitted on validation images."""

    k: int
    target_frr: float  # the share of known-class validation images the thresholds may reject
    confidence_threshold: float
    knn_threshold: float

    def to_dict(self) -> dict[str, Any]:
        """{k, target_frr, thresholds: {confidence, knn}}: the rule as the spec stores it."""
        return {
            "k": self.k,
            "target_frr": self.target_frr,
            "thresholds": {"confidence": self.confidence_threshold, "knn": self.knn_threshold},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UnknownRule:
        """The rule from `to_dict`'s form."""
        t = d["thresholds"]
        return cls(int(d["k"]), float(d["target_frr"]), float(t["confidence"]), float(t["knn"]))


@dataclass(frozen=True)
class InferenceSpec:
    """What a Predictor applies to a model's probabilities; the default applies nothing."""

    temperature: float | None = None
    class_scales: tuple[float, ...] | None = None
    tta_views: tuple[str, ...] | None = None
    unknown: UnknownRule | None = None
    fits: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> InferenceSpec:
        """A copy with `changes` (field names as keys)."""
        return dataclasses.replace(self, **changes)

    def with_fit(self, name: str, report: Mapping[str, Any] | None) -> InferenceSpec:
        """A copy whose fit report `name` is `report` (None removes it)."""
        fits = {k: v for k, v in self.fits.items() if k != name}
        if report is not None:
            fits[name] = dict(report)
        return dataclasses.replace(self, fits=fits)

    def to_dict(self) -> dict[str, Any]:
        """The spec as stored in inference.json: format, temperature, class_scales, tta_views, unknown, fits."""
        return {
            "format": SPEC_FORMAT,
            "temperature": self.temperature,
            "class_scales": None if self.class_scales is None else list(self.class_scales),
            "tta_views": None if self.tta_views is None else list(self.tta_views),
            "unknown": None if self.unknown is None else self.unknown.to_dict(),
            "fits": dict(self.fits),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "inference spec") -> InferenceSpec:
        """Parse and check a stored spec; RunCorruptError naming `where` and the bad key or value."""
        unknown_keys = sorted(set(d) - set(_KEYS))
        if unknown_keys:
            hints = [closest_names(k, _KEYS, n=1, cutoff=0.6) for k in unknown_keys]
            said = ", ".join(
                f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in zip(unknown_keys, hints, strict=True)
            )
            raise RunCorruptError(f"{where}: unknown key {said}; a spec holds {', '.join(_KEYS)}")
        if d.get("format", SPEC_FORMAT) != SPEC_FORMAT:
            raise RunCorruptError(f"{where}: format {d.get('format')!r} is not {SPEC_FORMAT}; upgrade picsift")
        try:
            spec = cls(
                temperature=None if d.get("temperature") is None else float(d["temperature"]),
                class_scales=None if d.get("class_scales") is None else tuple(float(s) for s in d["class_scales"]),
                tta_views=None if d.get("tta_views") is None else tuple(str(v) for v in d["tta_views"]),
                unknown=None if d.get("unknown") is None else UnknownRule.from_dict(d["unknown"]),
                fits=dict(d.get("fits") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise RunCorruptError(f"{where}: {type(e).__name__}: {e}; refit it with `picsift calibrate`") from e
        spec.check(where)
        return spec

    def check(self, where: str = "inference spec") -> None:
        """RunCorruptError for values no fit produces: T <= 0, a scale <= 0, no views, k < 1."""
        if self.temperature is not None and not (np.isfinite(self.temperature) and self.temperature > 0):
            raise RunCorruptError(f"{where}: temperature must be a positive number, got {self.temperature}")
        if self.class_scales is not None and not all(np.isfinite(s) and s > 0 for s in self.class_scales):
            raise RunCorruptError(f"{where}: class scales must be positive numbers; refit with `picsift calibrate`")
        if self.tta_views is not None and not self.tta_views:
            raise RunCorruptError(f"{where}: tta_views is empty")
        if self.unknown is not None and self.unknown.k < 1:
            raise RunCorruptError(f"{where}: unknown.k must be at least 1, got {self.unknown.k}")


def _from_legacy(docs: Mapping[str, Mapping[str, Any]], where: str) -> InferenceSpec:
    """The spec of a run made before inference.json, from its calibration/thresholds/tta/unknown files."""
    try:
        cal, thr, tta, unk = (docs.get(k) for k in ("calibration", "thresholds", "tta", "unknown"))
        spec = InferenceSpec(
            temperature=float(cal["temperature"]) if cal else None,
            class_scales=tuple(float(s) for s in thr["scales"]) if thr else None,
            tta_views=tuple(str(v) for v in tta["views"]) if tta else None,
            unknown=UnknownRule.from_dict(unk) if unk else None,
            fits={k: dict(v) for k, v in docs.items()},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise RunCorruptError(f"{where}: {type(e).__name__}: {e}; refit it with `picsift calibrate`") from e
    spec.check(where)
    return spec


def read_spec(run: RunFolder) -> InferenceSpec:
    """The run's inference spec: inference.json, else the files of older runs, else the empty spec."""
    doc = run.read_inference()
    if doc is not None:
        return InferenceSpec.from_dict(doc, f"run {run.name}'s inference spec")
    legacy = run.read_legacy_inference()
    return _from_legacy(legacy, f"run {run.name}'s inference settings") if legacy else InferenceSpec()


def write_spec(run: RunFolder, spec: InferenceSpec) -> None:
    """Store `spec` as the run's inference spec (for picsift.improve, which fits it)."""
    spec.check(f"inference spec for run {run.name}")
    run.write_inference(spec.to_dict())
