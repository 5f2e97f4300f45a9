"""`picsift compare`: train several candidates on the same split and rank them on held-out images.

A candidate is a registry model (`fastcnn`, `resnet18`, `timm/...`) or a classical model with its
features (`svm:hog`, `knn:cnn:fastcnn`, `logistic:run:RUN`; a bare `svm` uses HOG). Every candidate
goes through `picsift.train.run` with the same seed, hence the same train/val/test split, and is scored
on the test split (val when there is none) through the same Predictor that serves it. The leaderboard
(accuracy with its Wilson 95% interval, macro F1, the budget each got, training time, prediction time per image,
model size; the majority-class baseline) is printed by the CLI and written as leaderboard.json and leaderboard.html
(table + bar charts) under `<workspace>/compare/`. A winner is named only when a paired McNemar test on the same
images separates the best candidate from every other; otherwise the page says there is no clear winner.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from picsift.config import MAX_EPOCHS, MAX_MINUTES, check_optional, check_seed
from picsift.errors import ConfigError, PicsiftError
from picsift.jsonio import write_json
from picsift.runs import RunFolder
from picsift.store import Workspace

log = logging.getLogger("picsift.compare")

DEFAULT_CANDIDATES = ("fastcnn", "svm:hog", "logistic:hog", "knn:hog", "random-forest:hog", "svm:cnn:fastcnn")
COMPARE_DIR = "compare"


@dataclass(frozen=True)
class Candidate:
    """One model to compare: the text the user wrote, the registry model name and (classical models) the features."""

    label: str  # as the user wrote it
    model: str
    features: str | None  # classical models only


def parse_candidates(text: str | list[str] | tuple[str, ...]) -> list[Candidate]:
    """'fastcnn,svm:hog,knn:cnn:fastcnn' -> candidates; unknown models and bad combinations raise."""
    from picsift.classical import CLASSICAL, DEFAULT_FEATURES
    from picsift.models.registry import get_spec

    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not items:
        raise ConfigError("--models is empty: give comma-separated candidates, e.g. fastcnn,svm:hog")
    out: list[Candidate] = []
    for item in items:
        model, _, features = item.partition(":")
        spec = get_spec(model)  # unknown name -> ModelNotFoundError with a did-you-mean
        if spec.family == "classical":
            from picsift.features import get_extractor

            feats = features or DEFAULT_FEATURES
            if not feats.startswith("run:"):
                get_extractor(feats)  # typo -> did-you-mean, before anything is trained
            out.append(Candidate(item, model, feats))
        elif features:
            raise ConfigError(
                f"candidate {item!r}: only classical models ({', '.join(CLASSICAL)}) take features; "
                f"{model} is a {spec.family} CNN, write it alone"
            )
        else:
            out.append(Candidate(item, model, None))
    dupes = sorted({c.label for c in out if [d.label for d in out].count(c.label) > 1})
    if dupes:
        raise ConfigError(f"candidates listed twice: {dupes}")
    return out


@dataclass
class Leaderboard:
    """The result of a comparison: rows best first (failed candidates last, with "error"), the split and
    number of images scored, and where the JSON and HTML reports were written."""

    rows: list[dict[str, Any]]  # best first; failed candidates last with "error"
    split: str
    n_eval: int
    json_path: Path
    html_path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def evaluate_run(ws: Workspace, run_dir: Path) -> dict[str, Any]:
    """Score a run on its test split (val if it has none) with the serving Predictor, timing prediction.

    Held-out images that cannot be scored (of a class the run has no training images for, excluded, unlabelled,
    missing or undecodable now) are counted under "skipped" ({class: {"count", "reason", "reasons"}}, as
    `picsift evaluate` writes in metrics.json), never dropped silently."""
    from sklearn.metrics import accuracy_score, f1_score

    from picsift.data.available import decode_available
    from picsift.evaluate.pipeline import select_rows, skipped_by_class
    from picsift.inference import Predictor

    run = RunFolder(run_dir)
    data = run.read_data_split()
    split = "test" if data.get("test_ids") else "val"
    ids = data.get(f"{split}_ids") or []
    predictor = Predictor.from_run(run_dir)
    classes = list(predictor.classes)
    rows, dropped = select_rows(ws, ids, classes)
    decoded = decode_available(ws.cache_dir, rows, predictor.data_config.storage_size, f"decoding {split} images")
    by_id = {r.id: r for r in rows}
    dropped += [(by_id[s.image_id].label or "(unlabelled)", s.kind) for s in decoded.skipped]
    skipped = skipped_by_class(dropped)
    if skipped:
        log.warning("%s: %d of %d %s images not scored: %s", run_dir.name, len(dropped), len(ids), split, skipped)
    rows, x = decoded.rows, decoded.x
    if not rows:
        raise ConfigError(f"run {run_dir.name} has no labelled {split} images to score")
    y = np.array([classes.index(r.label) for r in rows if r.label is not None])
    t0 = time.perf_counter()
    probs = predictor.predict_arrays(x)
    seconds = time.perf_counter() - t0
    pred = probs.argmax(1)
    from picsift.evaluate.metrics import majority_baseline, wilson_interval

    correct = pred == y
    return {
        "split": split,
        "n_eval": len(rows),
        "skipped": skipped,
        "accuracy": float(accuracy_score(y, pred)),
        "accuracy_ci95": list(wilson_interval(int(correct.sum()), len(rows))),
        "majority_baseline": majority_baseline(y, classes),
        # per image (id -> right or wrong), for the paired test between candidates; not written to JSON
        "_correct": {r.id: bool(c) for r, c in zip(rows, correct, strict=True)},
        "macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(len(classes))), zero_division=0)),
        "predict_ms_per_image": 1000.0 * seconds / len(rows),
        "model_bytes": _dir_bytes(run.artifact_dir),
    }


def compare(
    workspace: str | Path | None = None,
    candidates: str | list[str] | tuple[str, ...] = DEFAULT_CANDIDATES,
    *,
    time_budget_min: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    out_dir: Path | None = None,
) -> Leaderboard:
    """Train and score every candidate on the same split. The time budget is shared: classical models
    (seconds each) run first, then the CNNs split what is left equally."""
    from picsift import train
    from picsift.config import TrainConfig

    check_optional(time_budget_min, "--time-budget (minutes)", low=0, low_open=True, high=MAX_MINUTES)
    check_optional(epochs, "--epochs", low=1, high=MAX_EPOCHS, whole=True)
    check_seed(seed)
    ws = Workspace.open(workspace)
    cands = parse_candidates(candidates)
    order = sorted(cands, key=lambda c: c.features is None)  # classical first: they are quick
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for i, cand in enumerate(order):
        budget = None
        if time_budget_min is not None and cand.features is None:
            left = time_budget_min - (time.perf_counter() - start) / 60.0
            remaining_cnns = sum(1 for c in order[i:] if c.features is None)
            budget = max(left / remaining_cnns, 0.05)
        cfg = TrainConfig(
            workspace=ws.root, model=cand.model, features=cand.features, seed=seed, device=device,
            epochs=epochs if cand.features is None else None, time_budget_min=budget,
            run_name=f"compare-{cand.label.replace(':', '-').replace('/', '-')}",
        )  # fmt: skip
        row: dict[str, Any] = {"candidate": cand.label, "model": cand.model, "features": cand.features}
        try:
            result = train.run(cfg)
            row.update(run_id=result.run_id, train_seconds=result.seconds, val_acc=result.val_acc,
                       epochs=len(result.history), budget_min=budget)  # fmt: skip
            row.update(evaluate_run(ws, result.run_dir))
        except PicsiftError as e:
            log.warning("candidate %s failed: %s", cand.label, e)
            row["error"] = str(e)
        rows.append(row)
    rows.sort(key=lambda r: ("error" in r, -r.get("accuracy", 0.0), r.get("train_seconds", 0.0)))
    ok = [r for r in rows if "error" not in r]
    split = ok[0]["split"] if ok else "none"
    n_eval = ok[0]["n_eval"] if ok else 0
    verdict = compare_to_best(ok)
    for r in ok:
        r.pop("_correct", None)
    meta = {
        "workspace": str(ws.root),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "time_budget_min": time_budget_min,
        "split": split,
        "n_eval": n_eval,
        "majority_baseline": ok[0]["majority_baseline"] if ok else None,
        **verdict,
        "catalog_hash": ws.catalog.catalog_hash(),
    }
    out = out_dir or ws.root / COMPARE_DIR
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "leaderboard.json"
    write_json(json_path, {**meta, "leaderboard": rows}, default=str)
    html_path = out / "leaderboard.html"
    html_path.write_text(render_html(rows, meta))
    return Leaderboard(rows, split, n_eval, json_path, html_path, meta)


# ---- telling a difference from noise --------------------------------------------------------------------

NOISE_P = 0.05  # a candidate is "within the noise" of the best when the paired test cannot tell them apart


def paired_p_value(a: dict[int, bool], b: dict[int, bool]) -> float:
    """Two-sided exact McNemar test of two classifiers scored on the same images (image id -> correct): the
    binomial test of the images only one of them got right (scipy.stats.binomtest, p = 0.5). 1.0 when they
    disagree nowhere. Only the images both were scored on count."""
    from scipy.stats import binomtest

    shared = a.keys() & b.keys()
    only_a = sum(1 for i in shared if a[i] and not b[i])
    only_b = sum(1 for i in shared if b[i] and not a[i])
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def compare_to_best(ok: list[dict[str, Any]]) -> dict[str, Any]:
    """Sets each scored row's `p_vs_best` (paired test against the top row; None for the top row itself) and
    returns {"winner": the top candidate, or None when another is within the noise, "tied_with_best": the
    candidates the test cannot tell from it, "verdict": one sentence}. Rows: best first, with "_correct"."""
    if not ok:
        return {"winner": None, "tied_with_best": [], "verdict": "No candidate could be scored."}
    best = ok[0]
    best["p_vs_best"] = None
    tied = []
    for r in ok[1:]:
        r["p_vs_best"] = paired_p_value(best.get("_correct", {}), r.get("_correct", {}))
        if r["p_vs_best"] >= NOISE_P:
            tied.append(r["candidate"])
    n = best["n_eval"]
    base = best.get("majority_baseline") or {}
    # A candidate whose interval reaches down to the baseline has not shown it learned more than the class shares.
    weak = [r["candidate"] for r in ok if base and (r.get("accuracy_ci95") or [0.0])[0] <= base["accuracy"]]
    if len(ok) == 1:
        verdict = f"Only {best['candidate']} could be scored."
    elif tied:
        verdict = (
            f"No clear winner: {best['candidate']} scored highest, but {', '.join(tied)} "
            f"{'is' if len(tied) == 1 else 'are'} within the noise of it (paired McNemar test on the same {n} "
            f"images, p ≥ {NOISE_P}). More test images, or repeated runs, would be needed to separate them."
        )
    else:
        verdict = (
            f"{best['candidate']} is best: every other candidate is worse beyond the noise (paired McNemar test on "
            f"the same {n} images, p < {NOISE_P})."
        )
    if weak:
        verdict += (
            f" {', '.join(weak)} {'does' if len(weak) == 1 else 'do'} not beat the majority-class baseline "
            f"({base['accuracy']:.3f}) beyond the noise (95% interval reaching down to it)."
        )
    return {"winner": None if tied else best["candidate"], "tied_with_best": tied, "not_above_baseline": weak,
            "verdict": verdict}  # fmt: skip


# ---- the HTML page ----------------------------------------------------------------------------------


def leaderboard_figure(rows: list[dict[str, Any]], meta: dict[str, Any]) -> Any:
    """Accuracy (with its Wilson 95% interval) and macro F1 per candidate against the majority-class baseline (a
    dashed line), and training time (log scale): a matplotlib Figure, or None when nothing was scored."""
    from matplotlib.figure import Figure

    ok = [r for r in rows if "error" not in r]
    if not ok:
        return None
    names = [r["candidate"] for r in ok]
    pos = np.arange(len(ok))
    fig = Figure(figsize=(max(7.0, 1.1 * len(ok) + 3), 6.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    acc = np.array([r["accuracy"] for r in ok])
    ci = np.array([r.get("accuracy_ci95") or [a, a] for r, a in zip(ok, acc, strict=True)], dtype=float)
    err = np.vstack([acc - ci[:, 0], ci[:, 1] - acc]).clip(min=0)
    ax1.bar(pos - 0.2, acc, 0.4, yerr=err, capsize=4, label="accuracy (95% CI)", color="#1f77b4")
    ax1.bar(pos + 0.2, [r["macro_f1"] for r in ok], 0.4, label="macro F1", color="#ff7f0e")
    for p, r, hi in zip(pos, ok, ci[:, 1], strict=True):
        ax1.text(p - 0.2, hi + 0.01, f"{r['accuracy']:.3f}", ha="center", fontsize=8)
    base = meta.get("majority_baseline") or ok[0].get("majority_baseline")
    if base:
        ax1.axhline(base["accuracy"], color="#444", linestyle="--", linewidth=1,
                    label=f"majority baseline {base['accuracy']:.3f}")  # fmt: skip
    ax1.set_ylim(0, 1.12)
    ax1.set_ylabel(f"on {ok[0]['split']} ({ok[0]['n_eval']} images)")
    ax1.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    ax1.grid(axis="y", alpha=0.3)
    ax2.bar(pos, [max(r["train_seconds"], 1e-3) for r in ok], 0.6, color="#2ca02c")
    ax2.set_yscale("log")
    ax2.set_ylabel("train seconds")
    ax2.set_xticks(pos, names, rotation=25, ha="right")
    ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _chart(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """leaderboard_figure as an inline PNG data: URI ('' when nothing was scored)."""
    fig = leaderboard_figure(rows, meta)
    if fig is None:
        return ""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def budget_text(row: dict[str, Any]) -> str:
    """What the candidate was given: its share of --time-budget, else its epochs setting, else 'recipe'."""
    if row.get("budget_min") is not None:
        return f"{60 * float(row['budget_min']):.0f} s"
    return "n/a (classical)" if row.get("features") else "recipe"


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _cells(i: int, r: dict[str, Any]) -> list[str]:
    e = html.escape
    lo, hi = r.get("accuracy_ci95") or (r["accuracy"], r["accuracy"])
    p = r.get("p_vs_best")
    vs = "best" if p is None else (f"p = {p:.2f} (noise)" if p >= NOISE_P else f"p {_p_text(p)} (worse)")
    name = f'<span title="run {e(r.get("run_id", ""))}">{e(r["candidate"])}</span>'
    return [
        str(i), name, f"{r['accuracy']:.3f}", f"{lo:.3f}–{hi:.3f}", f"{r['macro_f1']:.3f}", vs, e(budget_text(r)),
        "–" if r.get("features") else str(r.get("epochs", "")), f"{r['train_seconds']:.1f}", f"{r['predict_ms_per_image']:.2f}",
        human_bytes(r["model_bytes"]),
    ]  # fmt: skip


def render_html(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The leaderboard page: the verdict (a winner only when the paired test separates it from the rest), the
    table (one line per candidate at 1280 px: run ids are in each name's tooltip) and the chart."""
    e = html.escape
    head = ["#", "candidate", "accuracy", "95% CI", "macro F1", "vs best", "budget", "epochs", "train s",
            "predict ms/img", "size"]  # fmt: skip
    body = []
    for i, r in enumerate(rows, 1):
        if "error" in r:
            cells = [str(i), e(r["candidate"]), f'<span class="err">failed: {e(r["error"])}</span>']
            body.append(
                "<tr class='failed'>" + "".join(f"<td>{c}</td>" for c in cells[:2])
                + f'<td class="wrap" colspan="{len(head) - 2}">{cells[2]}</td></tr>'
            )  # fmt: skip
            continue
        cls = " class='best'" if i == 1 else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in _cells(i, r)) + "</tr>")
    chart = _chart(rows, meta)
    img = f'<img alt="leaderboard chart" src="{chart}">' if chart else ""
    base = meta.get("majority_baseline")
    base_text = f" · majority-class baseline {base['accuracy']:.3f} (always {e(str(base['class']))})" if base else ""
    verdict = meta.get("verdict") or ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>picsift leaderboard</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}}
table{{border-collapse:collapse;font-size:14px}} td,th{{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right;
white-space:nowrap}} td.wrap{{white-space:normal;text-align:left}}
td:nth-child(2),th:nth-child(2){{text-align:left}} .err{{color:#b00}} tr.best td{{font-weight:600}}
p.verdict{{font-size:16px;max-width:1100px}} img{{max-width:100%}}</style></head><body>
<h1>Leaderboard</h1>
<p class="verdict" id="verdict">{e(verdict)}</p>
<p>{e(str(meta["n_eval"]))} {e(str(meta["split"]))} images{base_text} · seed {e(str(meta["seed"]))} ·
time budget {e(str(meta["time_budget_min"] or "none"))} min in all · {e(meta["created_at"])} ·
accuracy intervals: Wilson 95%; "vs best": paired McNemar test against the top row on the same images ·
prediction time includes feature extraction from pixels</p>
<table id="leaderboard"><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{"".join(body)}</table>
{img}</body></html>"""


def human_bytes(n: float) -> str:
    """A byte count as text: "512 B", "1.5 KB", "3.2 MB", "1.1 GB" (1024-based)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
