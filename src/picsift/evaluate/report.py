"""A self-contained HTML evaluation report: one file, inline CSS, figures and thumbnails as data: URIs.

It opens offline and can be mailed or attached to an issue. Other stages add their own sections
(explanations, drift, ensembles...) by passing `ReportSection`s: a title and an HTML fragment, built
with the helpers here (`figure_to_data_uri`, `image_to_data_uri`, `html_table`).
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from picsift.label.links import DEFAULT_APP_URL, label_app_link

THUMB_SIDE = 128
MAX_BAR_CLASSES = 60  # per-class bar chart: beyond this, only the lowest-F1 classes are drawn
MAX_ANNOTATED_CLASSES = 20  # confusion matrix cells get numbers up to this many classes
MAX_SIDE_BY_SIDE = 12  # up to this many classes the normalised and count matrices sit side by side; then one
MAX_TICK_CLASSES = 100  # class names on the matrix axes up to this many classes
MARKER_POINTS = 40  # a curve with more points than this is drawn as a plain line (markers would hide it)


@dataclass(frozen=True)
class ReportSection:
    """One report section. `html` is trusted markup: escape any user text with `html.escape` first."""

    title: str
    html: str
    id: str | None = None

    @property
    def anchor(self) -> str:
        """The section's HTML id: `id`, else the title lowercased with runs of other characters as "-"."""
        return self.id or (re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section")


@dataclass(frozen=True)
class Mistake:
    """A wrong prediction to show: the picture (uint8 H x W x 3), its true and predicted class; with its catalog
    `image_id`, a link that opens it in the labelling app (to fix a wrong label)."""

    image: np.ndarray
    true_label: str
    predicted_label: str
    confidence: float
    path: str = ""
    image_id: int | None = None


# ---- building blocks (public: other stages use them for their sections) ---------------------------
def esc(value: object) -> str:
    """`value` as text escaped for HTML (quotes included)."""
    return html.escape(str(value), quote=True)


def figure_to_data_uri(fig: Figure, dpi: int = 110) -> str:
    """Render a matplotlib figure to a base64 PNG data: URI (no pyplot, so no global state)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_to_data_uri(image: np.ndarray | Image.Image, side: int = THUMB_SIDE, quality: int = 85) -> str:
    """A thumbnail (longer side `side`) as a base64 JPEG data: URI. Small images are enlarged with
    nearest-neighbour so 16-32 px training images stay crisp instead of blurred by the browser."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    img = img.convert("RGB")
    scale = side / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(new, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def img_tag(uri: str, alt: str, css_class: str = "figure") -> str:
    """An <img> element showing `uri` (a data: URI or a link), `alt` escaped."""
    return f'<img class="{css_class}" src="{uri}" alt="{esc(alt)}">'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 1) -> str:
    """A plain table; floats are shown with 4 decimals; columns from `numeric_from` are right-aligned."""

    def cell(i: int, v: object) -> str:
        text = f"{v:.4f}" if isinstance(v, float) else str(v)
        cls = ' class="num"' if i >= numeric_from else ""
        return f"<td{cls}>{esc(text)}</td>"

    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}%" if pct else f"{value:.4f}"


# ---- figures -------------------------------------------------------------------------------------
def confusion_figure(matrix: np.ndarray, classes: Sequence[str]) -> Figure:
    """Up to MAX_SIDE_BY_SIDE classes: side by side, row-normalised (each row is a true class: the diagonal is
    recall) and counts. More classes: the row-normalised matrix alone, 0.3 inch per class, so that at the
    report's 110 dpi every class name stays legible (8 pt) and the page scrolls rather than shrinking it."""
    k = len(classes)
    counts = np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    panels: list[tuple[np.ndarray, str, str]] = [(norm, "normalised by true class", "{:.2f}")]
    if k <= MAX_SIDE_BY_SIDE:
        panels.append((counts, "counts", "{:d}"))
    side = max(3.6, 0.42 * k + 1.6) if k <= MAX_SIDE_BY_SIDE else 0.3 * k + 2.4
    fig = Figure(figsize=(len(panels) * side + 1.0, side))
    show_ticks = k <= MAX_TICK_CLASSES
    for n, (data, title, fmt) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), n)
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=1 if data is norm else max(1, int(counts.max())))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if show_ticks:
            ax.set_xticks(range(k), [_short(c) for c in classes], rotation=90 if k > 6 else 0, fontsize=8)
            ax.set_yticks(range(k), [_short(c) for c in classes], fontsize=8)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        if k <= MAX_ANNOTATED_CLASSES:
            top = float(data.max()) or 1.0
            for i in range(k):
                for j in range(k):
                    v = data[i, j]
                    ax.text(
                        j,
                        i,
                        fmt.format(int(v) if fmt == "{:d}" else v),
                        ha="center",
                        va="center",
                        fontsize=7 if k > 10 else 9,
                        color="white" if v > 0.55 * top else "#1f2937",
                    )
    fig.tight_layout()
    return fig


def per_class_figure(per_class: Mapping[str, Mapping[str, float]]) -> tuple[Figure, str]:
    """Horizontal grouped bars of precision, recall and F1 per class; returns (figure, note)."""
    names = list(per_class)
    note = ""
    if len(names) > MAX_BAR_CLASSES:
        names = sorted(names, key=lambda c: per_class[c]["f1"])[:MAX_BAR_CLASSES]
        note = f"Showing the {MAX_BAR_CLASSES} classes with the lowest F1 of {len(per_class)}."
    k = len(names)
    fig = Figure(figsize=(8.0, max(2.4, 0.42 * k + 1.0)))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(k)
    h = 0.27
    for offset, key, color in ((-h, "precision", "#3b82f6"), (0.0, "recall", "#f59e0b"), (h, "f1", "#10b981")):
        ax.barh(y + offset, [per_class[c][key] for c in names], height=h, label=key, color=color)
    ax.set_yticks(y, [_short(c, 24) for c in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, ncols=3, frameon=False)
    fig.tight_layout()
    return fig, note


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history):
        v = row.get(key)
        if isinstance(v, (int, float)) and not math.isnan(float(v)):
            xs.append(float(row.get("epoch", i + 1)))
            ys.append(float(v))
    return xs, ys


def _pruned(history: Sequence[Mapping[str, Any]]) -> bool:
    """True when the number of images trained per epoch changed by more than 5% (data pruning)."""
    _, images = _series(history, "images")
    return len(images) > 1 and max(images) > 1.05 * min(images)


def training_curves_figure(history: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Loss and accuracy per epoch (train and validation) from a run's metrics.jsonl rows; a third panel with the
    images trained per epoch when that changed (data pruning). Markers only on curves of up to MARKER_POINTS."""
    panels: list[tuple[str, tuple[str, ...]]] = [
        ("loss", ("train_loss", "val_loss")),
        ("accuracy", ("train_acc", "val_acc")),
    ]
    if not any(_series(history, key)[0] for _, keys in panels for key in keys):
        return None
    if _pruned(history):
        panels.append(("images per epoch", ("images",)))
    fig = Figure(figsize=(5.0 * len(panels), 3.4))
    for n, (title, keys) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), n)
        for key in keys:
            xs, ys = _series(history, key)
            if not xs:
                continue
            style: dict[str, Any] = {"marker": "o", "markersize": 3} if len(xs) <= MARKER_POINTS else {}
            if key == "images":
                ax.step(xs, ys, where="mid", color="#6b7280", label="trained images", **style)
            else:
                ax.plot(xs, ys, label=key.replace("_", " "), linewidth=1.2, **style)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def curves_note(history: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text notes for the curves: what is missing and why the train loss may jump."""
    notes = []
    if _series(history, "val_acc")[0] and not _series(history, "val_loss")[0]:
        notes.append("This run recorded no validation loss (runs trained before it was logged).")
    if _pruned(history):
        _, images = _series(history, "images")
        notes.append(
            f"Data pruning: the fast recipe let part of the well-learned images sit epochs out (between "
            f"{int(min(images))} and {int(max(images))} images per epoch, right panel) and trains on all of them "
            "again near the end. A pruned epoch holds mostly hard images, so its train loss is higher, and the "
            "loss jumps where the number of images changes; the validation curves are not affected."
        )
    train_loss, val_loss = _series(history, "train_loss")[1], _series(history, "val_loss")[1]
    if train_loss and val_loss:
        notes.append(
            "Train loss is measured on augmented images (with label smoothing where the recipe uses it), "
            "validation loss on plain ones, so the two are not on exactly the same footing."
        )
    return "".join(f"<p>{esc(n)}</p>" for n in notes)


def reliability_figure(bins: Sequence[Mapping[str, Any]]) -> Figure:
    """Accuracy per confidence bin against the diagonal (perfect calibration), and how many images
    fall in each bin, written on each bar (a well-trained model puts most of them on the right). The x-axis
    starts at the first bin's lower edge (1/K for `display_bins`: no top-1 confidence is lower)."""
    fig = Figure(figsize=(5.2, 5.6))
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    ax = fig.add_subplot(gs[0])
    hist = fig.add_subplot(gs[1], sharex=ax)
    lows = np.array([b["lower"] for b in bins])
    widths = np.array([b["upper"] - b["lower"] for b in bins])
    centers = lows + widths / 2
    acc = np.array([b["accuracy"] if b["accuracy"] is not None else np.nan for b in bins])
    conf = np.array([b["confidence"] if b["confidence"] is not None else np.nan for b in bins])
    counts = [int(b["count"]) for b in bins]
    has = ~np.isnan(acc)
    ax.bar(lows[has], acc[has], width=widths[has], align="edge", color="#3b82f6", edgecolor="white", label="accuracy")
    # The gap spans accuracy..confidence either way (over- or under-confident); hatched, unfilled, so
    # it stays readable where it overlaps the accuracy bar.
    ax.bar(
        lows[has],
        np.abs(conf - acc)[has],
        bottom=np.minimum(conf, acc)[has],
        width=widths[has],
        align="edge",
        fill=False,
        hatch="///",
        edgecolor="#ef4444",
        linewidth=0.8,
        label="gap to confidence",
    )
    x0 = float(lows.min()) if len(lows) else 0.0
    ax.plot([x0, 1], [x0, 1], "--", color="#374151", linewidth=1, label="perfect calibration")
    ax.set_xlim(x0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.tick_params(labelbottom=False)
    hist.bar(centers, counts, width=widths * 0.9, color="#6b7280")
    top = max(counts) if counts else 1
    for c, n in zip(centers, counts, strict=True):
        hist.text(c, n + 0.04 * top, str(n), ha="center", va="bottom", fontsize=8)
    hist.set_ylim(0, 1.3 * max(1, top))
    hist.set_xlabel("top-1 confidence")
    hist.set_ylabel("images")
    return fig


# ---- sections ------------------------------------------------------------------------------------
def accuracy_ci(metrics: Mapping[str, Any]) -> tuple[float, float]:
    """metrics["accuracy_ci95"], or the Wilson interval computed from accuracy and n (older metrics.json)."""
    if metrics.get("accuracy_ci95"):
        lo, hi = metrics["accuracy_ci95"]
        return float(lo), float(hi)
    from picsift.evaluate.metrics import wilson_interval

    n = int(metrics["n"])
    return wilson_interval(round(float(metrics["accuracy"]) * n), n)


def baseline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """metrics["majority_baseline"], or the same from the confusion matrix's row totals."""
    if metrics.get("majority_baseline"):
        return dict(metrics["majority_baseline"])
    rows = np.asarray(metrics["confusion_matrix"]).sum(axis=1)
    top = int(rows.argmax())
    return {"class": metrics["classes"][top], "accuracy": float(rows[top] / max(1, rows.sum()))}


def _kept_parts(setup: Mapping[str, Any]) -> list[str]:
    """Which weights were saved and their validation accuracy while training, for the training line (empty when
    run.json does not say: runs recorded before it did)."""
    epoch = setup.get("kept_epoch")
    if epoch is None:
        return []
    acc = setup.get("val_acc")
    which = "the linear probe" if epoch == 0 else f"epoch {esc(epoch)}"
    return [
        f"saved model: {which}" + (f" (val acc {esc(_fmt(acc, pct=True))} while training)" if acc is not None else "")
    ]


def evaluation_header(
    metrics: Mapping[str, Any],
    info: Mapping[str, Any],
    setup: Mapping[str, Any],
    shown_mistakes: int,
    links: Mapping[str, str],
) -> str:
    """What was scored and why, how the model was trained, the accuracy with its 95% interval against the
    majority-class baseline, how many mistakes there are and are shown, and links to the files behind the page."""
    lines = []
    split = info.get("split")
    if split:
        why = f": {info['split_reason']}" if info.get("split_reason") else ""
        lines.append(f"Scored on the <b>{esc(split)}</b> split ({esc(metrics['n'])} images){esc(why)}.")
    views = info.get("tta_views") or []
    if len(views) > 1:  # one view is the plain image
        lines.append(f"With test-time augmentation: probabilities averaged over {esc(', '.join(map(str, views)))}.")
    if setup:
        parts = [f"model <b>{esc(setup.get('model', '?'))}</b>"]
        budget = setup.get("time_budget_min")
        parts.append(f"time budget {esc(f'{float(budget):g}')} min" if budget else "no time budget")
        if setup.get("epochs") is not None:
            asked = setup.get("epochs_asked")
            parts.append(f"{esc(setup['epochs'])} epochs" + (f" (of {esc(asked)} asked)" if asked else ""))
        if setup.get("image_size"):
            parts.append(f"{esc(setup['image_size'])} px images")
        if setup.get("n_train") is not None:
            parts.append(f"{esc(setup['n_train'])} training images")
        if setup.get("train_seconds") is not None:
            parts.append(f"{float(setup['train_seconds']):.0f} s of training")
        parts += _kept_parts(setup)
        lines.append("Training: " + ", ".join(parts) + ".")
    lo, hi = accuracy_ci(metrics)
    base = baseline(metrics)
    lines.append(
        f"Accuracy <b>{esc(_fmt(metrics['accuracy'], pct=True))}</b> (95% interval {100 * lo:.1f}–{100 * hi:.1f}%, "
        f"Wilson, over {esc(metrics['n'])} images) against a majority-class baseline of "
        f"<b>{100 * float(base['accuracy']):.1f}%</b> (always answering {esc(base['class'])!s})."
    )
    wrong = int(metrics.get("mistakes", round((1 - float(metrics["accuracy"])) * int(metrics["n"]))))
    lines.append(
        f"{wrong} mistake{'s' if wrong != 1 else ''}, {shown_mistakes} shown"
        + (" (the most confident)" if 0 < shown_mistakes < wrong else "")
        + "."
    )
    if links:
        lines.append(
            "Files: " + " · ".join(f'<a href="{esc(href)}">{esc(name)}</a>' for name, href in links.items()) + "."
        )
    return '<div class="scope" id="scope">' + "".join(f"<p>{line}</p>" for line in lines) + "</div>"


def summary_cards(metrics: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    """The report's headline cards (accuracy with its 95% CI, baseline, top-k, F1, ECE, NLL, images) as HTML."""
    lo, hi = accuracy_ci(metrics)
    base = baseline(metrics)
    cards: list[tuple[str, str, str]] = [
        ("accuracy", _fmt(metrics["accuracy"], pct=True), f"top-1; 95% CI {100 * lo:.1f}–{100 * hi:.1f}%"),
        ("majority baseline", f"{100 * float(base['accuracy']):.2f}%", f"always {_short(str(base['class']), 24)}"),
    ]
    for k, v in metrics.get("top_k_accuracy", {}).items():
        if k != "1":
            cards.append((f"top-{k} accuracy", _fmt(v, pct=True), ""))
    cards += [
        ("macro F1", _fmt(metrics["macro_avg"]["f1"]), "unweighted mean over classes"),
        ("weighted F1", _fmt(metrics["weighted_avg"]["f1"]), "weighted by support"),
        ("ECE", _fmt(metrics["ece"]), f"{metrics.get('ece_bins', 15)} bins; 0 = calibrated"),
        ("NLL", _fmt(metrics["nll"]), "mean negative log-likelihood"),
        ("images", str(metrics["n"]), f"{info.get('split', '')} split, {metrics['num_classes']} classes"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="label">{esc(a)}</div><div class="value">{esc(b)}</div>'
            f'<div class="hint">{esc(c)}</div></div>'
            for a, b, c in cards
        )
        + "</div>"
    )


def confusions_table(confusions: Sequence[Mapping[str, Any]]) -> str:
    """The most frequent confusions as an HTML table, or "" when there are none."""
    if not confusions:
        return ""
    rows = [[c["true"], c["predicted"], c["count"], f"{100 * c['fraction_of_true']:.1f}%"] for c in confusions]
    return "<h3>Most frequent confusions</h3>" + html_table(
        ["true class", "predicted as", "images", "share of the true class"], rows, numeric_from=2
    )


def builtin_sections(
    metrics: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    mistakes: Sequence[Mistake],
    label_url: str = DEFAULT_APP_URL,
) -> list[ReportSection]:
    """The report's standard sections: confusion matrix, per-class metrics, training curves, reliability
    diagram and the most confident mistakes (each with a catalog id linked to the labelling app at `label_url`)."""
    classes = list(metrics["classes"])
    matrix = np.asarray(metrics["confusion_matrix"])
    out = [
        ReportSection(
            "Confusion matrix",
            "<p>Rows are true classes, columns predicted classes. Left: each row divided by its total, so the "
            "diagonal is per-class recall. Right: image counts.</p>"
            + (
                ""
                if len(classes) <= MAX_SIDE_BY_SIDE
                else " <p>With this many classes only the normalised matrix is "
                "drawn, full size (scroll sideways); the largest counts are in the table below.</p>"
            )
            + '<div class="scroll">'
            + img_tag(
                figure_to_data_uri(confusion_figure(matrix, classes)),
                "confusion matrix",
                "figure" if len(classes) <= MAX_SIDE_BY_SIDE else "full",
            )
            + "</div>"
            + confusions_table(metrics.get("top_confusions", [])),
        )
    ]
    fig, note = per_class_figure(metrics["per_class"])
    rows = [[c, m["precision"], m["recall"], m["f1"], m["support"]] for c, m in metrics["per_class"].items()]
    for name in ("macro_avg", "weighted_avg"):
        avg = metrics[name]
        rows.append([name.replace("_", " "), avg["precision"], avg["recall"], avg["f1"], avg["support"]])
    out.append(
        ReportSection(
            "Per-class precision, recall and F1",
            (f"<p>{esc(note)}</p>" if note else "")
            + img_tag(figure_to_data_uri(fig), "per-class precision, recall and F1")
            + html_table(["class", "precision", "recall", "F1", "support"], rows),
        )
    )
    curves = training_curves_figure(history)
    out.append(
        ReportSection(
            "Training curves",
            img_tag(figure_to_data_uri(curves), "training curves") + curves_note(history)
            if curves is not None
            else "<p>This run recorded no per-epoch history (metrics.jsonl is missing or empty).</p>",
        )
    )
    display = metrics.get("reliability_display") or metrics["reliability"]
    out.append(
        ReportSection(
            "Reliability diagram",
            f"<p>Expected calibration error {esc(_fmt(metrics['ece']))} (maximum per bin "
            f"{esc(_fmt(metrics.get('mce')))}; {esc(metrics.get('ece_bins', 15))} bins over 0-1). Bars above the "
            "diagonal mean the model is under-confident there, below it over-confident. The diagram uses "
            f"{len(display)} bins from 1/{esc(metrics['num_classes'])} (no top-1 confidence is lower) so that each "
            "holds enough images to mean something; the number under each bar is how many.</p>"
            + img_tag(figure_to_data_uri(reliability_figure(display)), "reliability diagram", "figure narrow"),
        )
    )
    if mistakes:
        cards = "".join(
            '<figure class="thumb">'
            + img_tag(image_to_data_uri(m.image), f"true {m.true_label}, predicted {m.predicted_label}", "")
            + f'<figcaption><span class="true">true: {esc(m.true_label)}</span><br>'
            f'<span class="pred">predicted: {esc(m.predicted_label)}</span><br>'
            f'<span class="conf">confidence {m.confidence:.3f}</span>'
            + (f'<br><span class="path" title="{esc(m.path)}">{esc(Path(m.path).name)}</span>' if m.path else "")
            + (
                f'<br><a class="open" href="{esc(label_app_link(m.image_id, label_url))}" '
                f'title="open in the labelling app">#{m.image_id}</a>'
                if m.image_id is not None
                else ""
            )
            + "</figcaption></figure>"
            for m in mistakes
        )
        wrong = int(metrics.get("mistakes", len(mistakes)))
        body = (
            f"<p>{wrong} mistake{'s' if wrong != 1 else ''}, {len(mistakes)} shown: the wrong predictions the "
            "model was most sure of, often label errors, ambiguous pictures or a systematic confusion.</p>"
            f'<div class="gallery">{cards}</div>'
        )
    else:
        body = "<p>No mistakes on this split.</p>"
    out.append(ReportSection("Most confident mistakes", body))
    return out


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:18px 32px}
header h1{margin:0 0 4px;font-size:22px}
header .meta{font-size:13px;color:#d1d5db}
nav{padding:8px 32px;background:#e5e7eb;font-size:13px}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
main{padding:16px 32px 48px;max-width:1400px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 20px;margin:16px 0}
h2{font-size:18px;margin:6px 0 10px}
h3{font-size:15px;margin:14px 0 4px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 16px;min-width:140px}
.card .label{font-size:12px;color:#6b7280;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:24px;font-weight:600}
.card .hint{font-size:11px;color:#9ca3af}
img.figure{max-width:100%;height:auto}
img.narrow{max-width:520px}
.scroll{overflow-x:auto} img.full{max-width:none}
.scope{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:4px 16px;margin:16px 0;font-size:14px}
.scope p{margin:6px 0}
table{border-collapse:collapse;font-size:13px;margin-top:10px}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure.thumb{margin:0;width:140px;font-size:12px}
figure.thumb img{width:128px;height:auto;border:3px solid #ef4444;border-radius:4px;image-rendering:pixelated}
figure.thumb .pred{color:#b91c1c}
figure.thumb .path{color:#6b7280;word-break:break-all}
footer{font-size:12px;color:#6b7280;padding:0 32px 24px}
"""


def render_report(
    metrics: Mapping[str, Any],
    *,
    title: str = "picsift evaluation report",
    info: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    mistakes: Sequence[Mistake] = (),
    sections: Sequence[ReportSection] = (),
    setup: Mapping[str, Any] | None = None,
    links: Mapping[str, str] | None = None,
    label_url: str = DEFAULT_APP_URL,
) -> str:
    """The whole report as one HTML string: what was scored (split and why, training setup, accuracy with its
    Wilson 95% interval against the majority-class baseline, mistakes found and shown, links), summary cards, the
    built-in sections, then `sections`.

    metrics: `compute_metrics`'s dict; info: short facts for the header (model, split, split_reason...);
    history: metrics.jsonl rows (epoch, train_loss, val_loss, train_acc, val_acc, images); setup: how the model
    was trained (model, time_budget_min, epochs, epochs_asked, image_size, n_train, train_seconds); links: name ->
    href of files beside the report (predictions.csv, metrics.json); label_url: the labelling app a mistake's id
    opens (`--label-url`).
    """
    info = dict(info or {})
    scope = evaluation_header(metrics, info, setup or {}, len(mistakes), links or {})
    info.pop("split_reason", None)
    all_sections = builtin_sections(metrics, history, mistakes, label_url) + list(sections)
    meta = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in info.items() if v not in (None, ""))
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in all_sections)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.html}</section>' for s in all_sections)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><div class="meta">{meta}</div></header>'
        f"<nav>{nav}</nav><main>{scope}{summary_cards(metrics, info)}{body}</main>"
        f"<footer>Generated by picsift on {made}. Self-contained: opens offline.</footer></body></html>\n"
    )


def write_report(path: Path, metrics: Mapping[str, Any], **kwargs: Any) -> Path:
    """render_report(...) written to `path` (atomically: a half-written report never replaces a good one)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render_report(metrics, **kwargs), encoding="utf-8")
    tmp.replace(path)
    return path
