"""The cluster map as one self-contained HTML page: thumbnails placed on the 2-D map, plus a gallery per cluster.

No JavaScript library: positioned <img> tags (base64 JPEG), hover to enlarge, a checkbox per cluster
to show or hide it. Opens from disk in any browser.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

MAP_SIDE = 900
THUMB = 36
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def colour(cluster: int) -> str:
    return "#000000" if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def thumb_uri(img: np.ndarray, side: int = THUMB) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).resize((side, side), Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def render(summary: dict[str, Any], points: list[dict[str, Any]], thumbs: dict[int, str]) -> str:
    """summary: clusters.json content; points: {id, x, y, cluster, label, path} for the shown images."""
    xs = np.array([p["x"] for p in points] or [0.0])
    ys = np.array([p["y"] for p in points] or [0.0])
    span_x = float(xs.max() - xs.min()) or 1.0
    span_y = float(ys.max() - ys.min()) or 1.0
    inner = MAP_SIDE - THUMB
    items = []
    for p in points:
        left = (p["x"] - xs.min()) / span_x * inner
        top = (ys.max() - p["y"]) / span_y * inner
        tip = html.escape(f"#{p['id']} cluster {p['cluster']} label {p['label'] or '-'}\n{p['path']}")
        items.append(
            f'<img class="pt c{p["cluster"]}" src="{thumbs.get(p["id"], "")}" title="{tip}" '
            f'style="left:{left:.0f}px;top:{top:.0f}px;border-color:{colour(p["cluster"])}">'
        )
    boxes, galleries = [], []
    for c in summary["clusters"]:
        cid = c["cluster"]
        name = "noise" if cid < 0 else f"cluster {cid}"
        labels = ", ".join(f"{html.escape(str(k))} {v}" for k, v in list(c["labels"].items())[:3]) or "unlabelled"
        boxes.append(
            f'<label style="color:{colour(cid)}"><input type="checkbox" checked data-c="{cid}"> '
            f"{name} ({c['size']})</label>"
        )
        shown = "".join(f'<img src="{thumbs[i]}" title="#{i}">' for i in c["image_ids"][:24] if i in thumbs)
        galleries.append(
            f'<div class="gal"><h3 style="color:{colour(cid)}">{name}: {c["size"]} images · {labels}</h3>{shown}</div>'
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
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>picsift clusters</title>
<style>
body{{font-family:system-ui,sans-serif;margin:20px;color:#222}}
#map{{position:relative;width:{MAP_SIDE}px;height:{MAP_SIDE}px;border:1px solid #ccc;background:#fafafa}}
.pt{{position:absolute;width:{THUMB - 6}px;height:{THUMB - 6}px;border:3px solid;transition:transform .1s}}
.pt:hover{{transform:scale(3);z-index:10}}
.gal img{{width:48px;height:48px;margin:1px}} .gal h3{{margin:12px 0 4px;font-size:15px}}
#legend label{{margin-right:14px;white-space:nowrap}}
</style></head><body>
<h1>Clusters</h1><p>{stats}</p>
<div id="legend">{"".join(boxes)}</div>
<p>Each thumbnail sits where its features put it on the 2-D map; hover to enlarge, untick to hide a cluster.</p>
<div id="map">{"".join(items)}</div>
<h2>Clusters</h2>{"".join(galleries)}
<script>
document.querySelectorAll('#legend input').forEach(function(box){{
  box.addEventListener('change', function(){{
    document.querySelectorAll('.pt.c' + box.dataset.c).forEach(function(el){{
      el.style.display = box.checked ? '' : 'none';
    }});
  }});
}});
</script></body></html>"""


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
