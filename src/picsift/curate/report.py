"""A self-contained HTML report of the findings: summary counts per kind and per class, then one table per
check with inline thumbnails (base64 JPEG), sortable by clicking a column header (a few lines of JS)."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from picsift.curate.findings import CHECKS, KINDS, Finding

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} .meta{color:#666;margin-bottom:1em}
table{border-collapse:collapse;margin:.5em 0 1.5em} th,td{border:1px solid #ddd;padding:4px 8px;
vertical-align:middle;text-align:left} td.imgs{white-space:nowrap} th{background:#f3f3f3;cursor:pointer;user-select:none}
th.nosort{cursor:default} td.num{text-align:right} img{height:56px;margin:1px;image-rendering:pixelated;
border:2px solid transparent} img.keep{border-color:#2a2} .muted{color:#888} .pill{display:inline-block;
background:#eef;border-radius:8px;padding:0 6px;margin-right:4px}
"""

# Click a header to sort by that column; numeric when the cells hold numbers (data-v), else text.
_JS = """
document.querySelectorAll('table.sortable th:not(.nosort)').forEach(function(th){
 th.addEventListener('click',function(){
  var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th);
  var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
  var rows=Array.prototype.slice.call(b.rows);
  rows.sort(function(r1,r2){var a=r1.cells[i].dataset.v||r1.cells[i].textContent,
   c=r2.cells[i].dataset.v||r2.cells[i].textContent,x=parseFloat(a),y=parseFloat(c);
   var d=(!isNaN(x)&&!isNaN(y))?x-y:a.localeCompare(c);return asc?d:-d;});
  rows.forEach(function(r){b.appendChild(r);});});});
"""


def thumbnail_uri(pixels: np.ndarray, size: int = 64) -> str:
    img = Image.fromarray(pixels)
    if max(img.size) > size:
        img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _embedding_line(choice: Mapping[str, Any]) -> str:
    """Which embedding the near-duplicate, outlier and label checks used (or why hand features)."""
    if not choice.get("text"):
        return ""
    return f"<p class='meta'>{html.escape(str(choice['text']))}</p>"


def _label_banner(stats: Mapping[str, Any]) -> str:
    if not stats:
        return ""
    text = (
        f"Label check: a {stats.get('model')} model on {stats.get('extractor')} features, {stats.get('folds')}-fold "
        f"cross-validated, agrees with {100 * float(stats.get('cv_agreement', 0)):.0f}% of the given labels."
    )
    if stats.get("weak"):
        text += (
            " That is weak: many flagged labels will be correct. Review label issues from the top (highest score)"
            " rather than excluding them all."
        )
    return f"<p class='meta'>{html.escape(text)}</p>"


def render_report(
    findings: Sequence[Finding],
    *,
    thumbs: Mapping[int, str],
    labels: Mapping[int, str | None],
    paths: Mapping[int, str],
    meta: Mapping[str, Any],
    max_rows_per_kind: int = 300,
) -> str:
    """The whole report as one HTML string (no external files). `thumbs`: image id -> data URI."""
    e = html.escape
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_kind[f.kind].append(f)
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for f in findings:
        for iid in f.image_ids[:1] if KINDS[f.kind] == "duplicates" else f.image_ids:
            per_class[labels.get(iid) or "(unlabeled)"][f.kind] += 1
    kinds_present = [k for k in KINDS if by_kind.get(k)]
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>picsift clean report</title>",
        f"<style>{_CSS}</style></head><body><h1>picsift clean report</h1>",
        f"<div class='meta'>{e(str(meta.get('n_images', '?')))} images checked · checks: "
        f"{e(', '.join(meta.get('checks', [])))} · {e(str(meta.get('created_at', '')))} · "
        f"catalog {e(str(meta.get('catalog_hash', ''))[:12])}</div>",
        _embedding_line(meta.get("embedding") or {}),
        _label_banner(meta.get("label_model") or {}),
        "<h2>Summary</h2><table class='sortable'><thead><tr><th>check</th><th>kind</th><th>findings</th>"
        "<th>images</th></tr></thead><tbody>",
    ]
    for k in kinds_present:
        n_img = len({i for f in by_kind[k] for i in f.image_ids})
        out.append(
            f"<tr><td>{KINDS[k]}</td><td><a href='#{k}'>{k}</a></td><td class='num' data-v='{len(by_kind[k])}'>"
            f"{len(by_kind[k])}</td><td class='num' data-v='{n_img}'>{n_img}</td></tr>"
        )
    if not kinds_present:
        out.append("<tr><td colspan='4'>No problems found.</td></tr>")
    out.append("</tbody></table>")
    if per_class and kinds_present:
        out.append("<h2>Per class</h2><table class='sortable'><thead><tr><th>class</th>")
        out += [f"<th>{e(k)}</th>" for k in kinds_present]
        out.append("</tr></thead><tbody>")
        for cls in sorted(per_class):
            cells = "".join(
                f"<td class='num' data-v='{per_class[cls][k]}'>{per_class[cls][k] or ''}</td>" for k in kinds_present
            )
            out.append(f"<tr><td>{e(cls)}</td>{cells}</tr>")
        out.append("</tbody></table>")
    for check in CHECKS:
        kinds = [k for k in kinds_present if KINDS[k] == check]
        if not kinds:
            continue
        out.append(f"<h2>{e(check.capitalize())}</h2>")
        for k in kinds:
            items = sorted(by_kind[k], key=lambda f: -f.score)
            out.append(f"<h3 id='{k}'>{k} <span class='muted'>({len(items)})</span></h3>")
            out.append(
                "<table class='sortable'><thead><tr><th>score</th><th class='nosort'>images</th>"
                "<th>explanation</th><th>label(s)</th><th>ids</th></tr></thead><tbody>"
            )
            for f in items[:max_rows_per_kind]:
                imgs = []
                for n, iid in enumerate(f.image_ids[:8]):
                    uri = thumbs.get(iid)
                    title = e(f"#{iid} {paths.get(iid, '')}")
                    cls = " class='keep'" if check == "duplicates" and n == 0 else ""
                    imgs.append(
                        f"<img src='{uri}' title='{title}'{cls}>" if uri else f"<span class='muted'>#{iid}</span>"
                    )
                labs = sorted({str(labels.get(i)) for i in f.image_ids if labels.get(i) is not None})
                out.append(
                    f"<tr><td class='num' data-v='{f.score:.6f}'>{f.score:.3f}</td><td class='imgs'>{''.join(imgs)}</td>"
                    f"<td>{e(f.explanation)}</td><td>{''.join(f'<span class=pill>{e(x)}</span>' for x in labs)}</td>"
                    f"<td>{e(' '.join(str(i) for i in f.image_ids[:20]))}</td></tr>"
                )
            if len(items) > max_rows_per_kind:
                out.append(
                    f"<tr><td colspan='5' class='muted'>{len(items) - max_rows_per_kind} more in findings.json</td></tr>"
                )
            out.append("</tbody></table>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out)
