"""The cluster map as one self-contained HTML page: thumbnails on a grid that follows the 2-D map, plus every
cluster's members.

No JavaScript library: positioned <img> tags (base64 JPEG), a radio button to colour frames by cluster or by label,
a checkbox per cluster to show or hide it, hover to enlarge (to the thumbnail's own THUMB_SOURCE px: sharp, never upscaled), and
under each cluster a link into the label app for every member. A plain warning says when the clusters do not
follow the labels. Opens from disk in any browser.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

from picsift.label.links import DEFAULT_APP_URL, label_app_link

MAP_SIDE = 900  # px the grid aims at; a large map gets bigger cells' worth of room and scrolls instead
MIN_CELL = 28  # px, the smallest grid cell
MAX_CELL = 48
THUMB_SOURCE = 96  # px of each embedded thumbnail: the hover zoom never enlarges past it
GALLERY_THUMBS = 24  # thumbnails per cluster; every member is also listed as a link
WEAK_NMI = 0.1  # below this the clusters have about nothing to do with the labels
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
UNLABELLED = "#bbbbbb"


def colour(cluster: int) -> str:
    """The cluster's colour from PALETTE (black for noise, -1)."""
    return "#000000" if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def thumb_uri(img: np.ndarray, side: int = THUMB_SOURCE) -> str:
    """img: uint8 (H, W, 3) -> a `side` x `side` JPEG as a base64 data: URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def grid_layout(xy: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int]:
    """Snap 2-D map positions (N, 2) to distinct cells of a G x G grid (G = ceil(sqrt(1.6 N)), some cells left
    empty so neighbourhoods keep their shape): each point, in random order, takes the free cell nearest its scaled
    position. Returns ((N, 2) int (column, row), G). Points never overlap; nearby points stay nearby."""
    n = len(xy)
    if n == 0:
        return np.zeros((0, 2), np.int64), 1
    g = max(1, math.ceil(math.sqrt(1.6 * n)))
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    target = (xy - lo) / span * (g - 1)
    target[:, 1] = (g - 1) - target[:, 1]  # screen rows grow downwards
    cells = np.stack(np.meshgrid(np.arange(g), np.arange(g), indexing="xy"), -1).reshape(-1, 2).astype(np.float64)
    free = np.ones(len(cells), bool)
    out = np.zeros((n, 2), np.int64)
    for i in np.random.default_rng(seed).permutation(n):
        d = ((cells - target[i]) ** 2).sum(axis=1)
        d[~free] = np.inf
        j = int(d.argmin())
        free[j] = False
        out[i] = cells[j].astype(np.int64)
    return out, g


def nmi_warning(summary: dict[str, Any]) -> str:
    """A plain warning when the clusters hardly follow the labels (NMI under WEAK_NMI), else ''."""
    metrics = summary.get("metrics") or {}
    nmi = metrics.get("nmi")
    if nmi is None or nmi >= WEAK_NMI:
        return ""
    feats = html.escape(str(summary.get("features", "")))
    return (
        '<div class="warn" id="nmi-warning"><b>These clusters do not follow your labels</b> '
        f"(NMI {nmi:.3f}: 0 means no relation, 1 a perfect match). The <b>{feats}</b> features group pictures by "
        "colour, texture and layout rather than by what they show. A pretrained extractor usually groups by "
        "content: list the extractors with <code>picsift features --list</code>, then run "
        "<code>picsift cluster --features NAME</code>.</div>"
    )


def _label_colours(points: list[dict[str, Any]]) -> dict[str, str]:
    names = sorted({str(p["label"]) for p in points if p.get("label") is not None})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _map(
    points: list[dict[str, Any]], thumbs: dict[int, str], label_colour: dict[str, str], app: str = DEFAULT_APP_URL
) -> tuple[str, int, int]:
    """The positioned thumbnails, the cell size and the grid's side in cells."""
    xy = np.array([[p["x"], p["y"]] for p in points], dtype=np.float64).reshape(-1, 2)
    cells, g = grid_layout(xy)
    cell = int(min(MAX_CELL, max(MIN_CELL, MAP_SIDE // g)))
    items = []
    for p, (col, row) in zip(points, cells.tolist(), strict=True):
        label = p.get("label")
        tip = html.escape(f"#{p['id']} cluster {p['cluster']} label {label or '-'}\n{p['path']}")
        lc = label_colour.get(str(label), UNLABELLED) if label is not None else UNLABELLED
        items.append(
            f'<a href="{html.escape(label_app_link(p["id"], app))}" class="pt c{p["cluster"]}" data-id="{p["id"]}" '
            f'style="left:{col * cell}px;top:{row * cell}px;--cc:{colour(p["cluster"])};--lc:{lc}">'
            f'<img src="{thumbs.get(p["id"], "")}" title="{tip}" alt="#{p["id"]}"></a>'
        )
    return "".join(items), cell, g


def _galleries(
    summary: dict[str, Any], thumbs: dict[int, str], app: str = DEFAULT_APP_URL
) -> tuple[list[str], list[str]]:
    boxes, galleries = [], []
    for c in summary["clusters"]:
        cid = c["cluster"]
        name = "noise" if cid < 0 else f"cluster {cid}"
        labels = ", ".join(f"{html.escape(str(k))} {v}" for k, v in list(c["labels"].items())[:3]) or "unlabelled"
        boxes.append(
            f'<label style="color:{colour(cid)}"><input type="checkbox" checked data-c="{cid}"> '
            f"{name} ({c['size']})</label>"
        )
        shown = "".join(
            f'<a href="{html.escape(label_app_link(i, app))}"><img src="{thumbs[i]}" title="#{i}" alt="#{i}"></a>'
            for i in c["image_ids"][:GALLERY_THUMBS]
            if i in thumbs
        )
        every = " ".join(f'<a href="{html.escape(label_app_link(i, app))}">#{i}</a>' for i in c["image_ids"])
        galleries.append(
            f'<div class="gal" data-c="{cid}"><h3 style="color:{colour(cid)}">{name}: {c["size"]} images · {labels}'
            f"</h3>{shown}<details><summary>all {c['size']} members (open in the label app)</summary>"
            f'<p class="ids">{every}</p></details></div>'
        )
    return boxes, galleries


def render(
    summary: dict[str, Any], points: list[dict[str, Any]], thumbs: dict[int, str], label_url: str = DEFAULT_APP_URL
) -> str:
    """summary: clusters.json content; points: {id, x, y, cluster, label, path} for the shown images;
    thumbs: image id -> JPEG data URI (`thumb_uri`, THUMB_SOURCE px); label_url: the labelling app every image
    links to (`--label-url`)."""
    label_colour = _label_colours(points)
    by_label = bool(label_colour)
    items, cell, g = _map(points, thumbs, label_colour, label_url)
    side = cell * g
    boxes, galleries = _galleries(summary, thumbs, label_url)
    label_keys = "".join(
        f'<span class="key" style="border-color:{c}">{html.escape(name)}</span>' for name, c in label_colour.items()
    )
    metrics = summary.get("metrics") or {}
    stats = (
        f"{summary['n_images']} images · features <b>{html.escape(summary['features'])}</b> · "
        f"{summary['method']} · k={summary['k']} · silhouette {fmt(summary.get('silhouette'))} · "
        f"map {summary['map_method']}"
    )
    if metrics:
        stats += (
            f" · purity {fmt(metrics['purity'])} · NMI {fmt(metrics['nmi'])} · ARI {fmt(metrics['ari'])}"
            f" (on {metrics['n_labeled']} labelled images)"
        )
    shown = f"{len(points)} of {summary['n_images']}" if len(points) < summary["n_images"] else "All"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>picsift clusters</title>
<style>
body{{font-family:system-ui,sans-serif;margin:20px;color:#222}}
.warn{{background:#fff4e5;border:1px solid #f0b45a;border-radius:6px;padding:8px 12px;max-width:1100px}}
#wrap{{overflow:auto;max-width:100%}}
#map{{position:relative;width:{side}px;height:{side}px;border:1px solid #ccc;background:#fafafa}}
.pt{{position:absolute;width:var(--cell);height:var(--cell);box-sizing:border-box;border:3px solid var(--cc);
transition:transform .1s;display:block}}
#map.by-label .pt{{border-color:var(--lc)}}
.pt img{{width:100%;height:100%;display:block}}
.pt:hover{{transform:scale({THUMB_SOURCE / cell:.2f});z-index:10}}
.gal img{{width:{THUMB_SOURCE // 2}px;height:{THUMB_SOURCE // 2}px;margin:1px}} .gal h3{{margin:12px 0 4px;font-size:15px}}
.ids a{{margin-right:6px}} #legend label{{margin-right:14px;white-space:nowrap}}
.key{{border-left:14px solid;padding-left:4px;margin-right:12px}}
</style></head><body>
<h1>Clusters</h1><p>{stats}</p>
{nmi_warning(summary)}
<p>Frame colour: <label><input type="radio" name="colour" value="cluster"{"" if by_label else " checked"}> cluster</label>
<label><input type="radio" name="colour" value="label"{" checked" if by_label else ""}> label</label>
<span id="label-keys">{label_keys}</span></p>
<div id="legend">{"".join(boxes)}</div>
<p>{shown} images, each in its own cell near where its features put it on the 2-D map; hover to enlarge, click to open
it in the label app (<code>picsift label</code>), untick a cluster to hide it. Every member of every cluster is listed
below the map.</p>
<div id="wrap"><div id="map" class="{"by-label" if by_label else ""}" style="--cell:{cell}px">{items}</div></div>
<h2>Clusters</h2>{"".join(galleries)}
<script>
document.querySelectorAll('#legend input').forEach(function(box){{
  box.addEventListener('change', function(){{
    document.querySelectorAll('.pt.c' + box.dataset.c).forEach(function(el){{
      el.style.display = box.checked ? '' : 'none';
    }});
  }});
}});
document.querySelectorAll('input[name=colour]').forEach(function(r){{
  r.addEventListener('change', function(){{
    document.getElementById('map').classList.toggle('by-label', r.value === 'label' && r.checked);
  }});
}});
</script></body></html>"""


def fmt(value: float | None) -> str:
    """The value with 3 decimals, or "n/a" for None."""
    return "n/a" if value is None else f"{value:.3f}"
