"""A self-contained HTML report of the findings: summary counts per check and kind (0 for a check that found
nothing), per class, then one table per kind with 160 px thumbnails (click one to see the original file), the
file name and a link into the label app under each, sortable by clicking a column header (a few lines of JS)."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from picsift.curate.findings import CHECKS, KINDS, Finding
from picsift.label.links import DEFAULT_APP_URL, label_app_link

THUMB_SIDE = 160  # px, the longer side of each thumbnail in the report
KEEP_RULE = (
    "most pixels, then the best quality score (sharp, contrasty, not over- or under-exposed), then the held-out "
    "split, then the biggest file"
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} .meta{color:#666;margin-bottom:1em}
table{border-collapse:collapse;margin:.5em 0 1.5em} th,td{border:1px solid #ddd;padding:4px 8px;
vertical-align:top;text-align:left} th{background:#f3f3f3;cursor:pointer;user-select:none}
th.nosort{cursor:default} td.num{text-align:right} td.zero{color:#999} .muted{color:#888}
.pill{display:inline-block;background:#eef;border-radius:8px;padding:0 6px;margin-right:4px}
.shots{display:flex;flex-wrap:wrap;gap:6px;width:max-content;max-width:690px}
figure.shot{margin:0;width:164px;font-size:12px;line-height:1.3}
figure.shot img{width:160px;height:160px;object-fit:contain;background:#f4f4f4;border:2px solid transparent;
cursor:zoom-in;display:block}
figure.keep img{border-color:#2a2} figure.drop img{border-color:#d88}
figure.shot figcaption{word-break:break-all}
.keepmark{background:#2a2;color:#fff;border-radius:3px;padding:0 4px;font-weight:600}
.dropmark{background:#d88;color:#fff;border-radius:3px;padding:0 4px}
.lab{font-weight:600} .legend{background:#f7f7f2;border:1px solid #e4e4d8;padding:6px 10px;max-width:980px}
#zoom{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);z-index:10;text-align:center;color:#eee}
#zoom img{max-width:92vw;max-height:84vh;margin-top:3vh;background:#fff} #zoom a{color:#9cf}
"""

# Click a header to sort by that column; numeric when the cells hold numbers (data-v), else text.
# Click a thumbnail to see the original file full size (falls back to the thumbnail when the file cannot be reached).
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
var zoom=document.getElementById('zoom'),zimg=zoom.querySelector('img'),zcap=zoom.querySelector('p');
document.querySelectorAll('figure.shot img').forEach(function(im){
 im.addEventListener('click',function(){
  zimg.onerror=function(){zimg.onerror=null;zimg.src=im.src;};
  zimg.src=im.dataset.full||im.src;zcap.innerHTML=im.closest('figure').querySelector('figcaption').innerHTML;
  zoom.style.display='block';});});
zoom.addEventListener('click',function(ev){if(ev.target.tagName!=='A'){zoom.style.display='none';}});
document.addEventListener('keydown',function(ev){if(ev.key==='Escape'){zoom.style.display='none';}});
"""


def thumbnail_uri(pixels: np.ndarray | Image.Image, size: int = THUMB_SIDE) -> str:
    """A JPEG data: URI of the picture, its longer side shrunk to `size` px (never enlarged)."""
    img = pixels.copy() if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    if max(img.size) > size:
        img.thumbnail((size, size))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_thumbnail_uri(
    path: str,
    fallback: np.ndarray,
    size: int = THUMB_SIDE,
    sha256: str | None = None,
    cache_dir: Path | None = None,
) -> str:
    """`thumbnail_uri` of the original file (sharper than a small decoded copy), or of `fallback` pixels
    ((H, W, 3) uint8) when the file cannot be decoded any more. An object URL is read through the cache in
    `cache_dir` under `sha256` (`picsift.data.images.image_file`)."""
    from picsift.data.images import image_file, to_rgb

    try:
        with Image.open(image_file(path, sha256, cache_dir)) as img:
            img.draft("RGB", (size, size))
            return thumbnail_uri(to_rgb(img), size)
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError):
        return thumbnail_uri(fallback, size)


def file_uri(path: str) -> str:
    """The address a browser opens the original file at: file:// for a local absolute path, else ''."""
    if path.startswith(("http://", "https://")):
        return path
    p = Path(path)
    return p.as_uri() if p.is_absolute() else ""


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


def _shot(
    iid: int,
    *,
    thumbs: Mapping[int, str],
    paths: Mapping[int, str],
    label: str | None = None,
    mark: str = "",
    app: str = DEFAULT_APP_URL,
) -> str:
    """One image: the thumbnail (click: the original file), then the keep/drop mark, a link into the label app,
    the file name and (for duplicate groups) its label."""
    e = html.escape
    path = paths.get(iid, "")
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    uri = thumbs.get(iid)
    pic = (
        f"<img src='{uri}' alt='{e(name)}' title='{e(path)}' data-full='{e(file_uri(path))}' loading='lazy'>"
        if uri
        else "<div class='muted'>(no thumbnail)</div>"
    )
    marks = {"keep": "<span class='keepmark'>keep</span> ", "drop": "<span class='dropmark'>copy</span> "}
    cap = (
        marks.get(mark, "")
        + f"<a class='open' href='{e(label_app_link(iid, app))}' title='open in the label app'>#{iid}</a> "
        + f"<span class='file' title='{e(path)}'>{e(name)}</span>"
        + (f"<br><span class='lab'>{e(label)}</span>" if label is not None else "")
    )
    cls = f"shot {mark}".strip()
    return f"<figure class='{cls}'>{pic}<figcaption>{cap}</figcaption></figure>"


def _summary(by_kind: Mapping[str, list[Finding]], checks: Sequence[str]) -> list[str]:
    """One row per kind of every check that ran (0 when it found nothing), then kinds found by other checks."""
    e = html.escape
    kinds = [k for k in KINDS if KINDS[k] in checks] + [k for k in KINDS if KINDS[k] not in checks and by_kind.get(k)]
    out = [
        "<h2>Summary</h2><table class='sortable' id='summary'><thead><tr><th>check</th><th>kind</th>"
        "<th>findings</th><th>images</th></tr></thead><tbody>"
    ]
    for k in kinds:
        found = by_kind.get(k, [])
        n_img = len({i for f in found for i in f.image_ids})
        name = f"<a href='#{k}'>{k}</a>" if found else e(k)
        zero = " zero" if not found else ""
        out.append(
            f"<tr><td>{KINDS[k]}</td><td>{name}</td><td class='num{zero}' data-v='{len(found)}'>{len(found)}</td>"
            f"<td class='num{zero}' data-v='{n_img}'>{n_img}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _per_class(findings: Sequence[Finding], labels: Mapping[int, str | None], kinds: Sequence[str]) -> list[str]:
    e = html.escape
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for f in findings:
        for iid in f.image_ids[:1] if KINDS[f.kind] == "duplicates" else f.image_ids:
            per_class[labels.get(iid) or "(unlabeled)"][f.kind] += 1
    if not per_class or not kinds:
        return []
    out = ["<h2>Per class</h2><table class='sortable'><thead><tr><th>class</th>"]
    out += [f"<th>{e(k)}</th>" for k in kinds]
    out.append("</tr></thead><tbody>")
    for cls in sorted(per_class):
        cells = "".join(f"<td class='num' data-v='{per_class[cls][k]}'>{per_class[cls][k]}</td>" for k in kinds)
        out.append(f"<tr><td>{e(cls)}</td>{cells}</tr>")
    out.append("</tbody></table>")
    return out


def _duplicates_legend() -> str:
    return (
        "<p class='legend'>In each group the copy marked <span class='keepmark'>keep</span> (green frame) is the "
        f"best copy, chosen by {KEEP_RULE}; the others are marked <span class='dropmark'>copy</span> and are what "
        "<code>picsift clean --apply --exclude-near-duplicates</code> excludes. The label under each image is its "
        "current label. Click a thumbnail to see the original file; click <b>#id</b> to open the image in the "
        "label app (<code>picsift label</code>).</p>"
    )


def _kind_table(
    kind: str,
    items: Sequence[Finding],
    *,
    thumbs: Mapping[int, str],
    labels: Mapping[int, str | None],
    paths: Mapping[int, str],
    max_rows: int,
    app: str = DEFAULT_APP_URL,
) -> list[str]:
    e = html.escape
    group = KINDS[kind] == "duplicates"
    suggest = kind == "label_issue"
    head = "<th>score</th><th class='nosort'>images</th><th>explanation</th><th>label(s)</th>"
    if suggest:
        head += "<th>suggested label</th><th>confidence</th>"
    out = [
        f"<h3 id='{kind}'>{kind} <span class='muted'>({len(items)})</span></h3>",
        f"<table class='sortable kind' data-kind='{kind}'><thead><tr>{head}</tr></thead><tbody>",
    ]
    for f in items[:max_rows]:
        shots = "".join(
            _shot(
                iid,
                thumbs=thumbs,
                paths=paths,
                label=(labels.get(iid) or "(unlabelled)") if group else None,
                mark=("keep" if n == 0 else "drop") if group else "",
                app=app,
            )
            for n, iid in enumerate(f.image_ids[:8])
        )
        more = len(f.image_ids) - 8
        if more > 0:
            rest = " ".join(f"<a href='{e(label_app_link(i, app))}'>#{i}</a>" for i in f.image_ids[8:])
            shots += f"<div class='muted'>and {more} more: {rest}</div>"
        labs = sorted({str(labels.get(i)) for i in f.image_ids if labels.get(i) is not None})
        row = (
            f"<tr><td class='num' data-v='{f.score:.6f}'>{f.score:.3f}</td><td><div class='shots'>{shots}</div></td>"
            f"<td>{e(f.explanation)}</td><td>{''.join(f'<span class=pill>{e(x)}</span>' for x in labs)}</td>"
        )
        if suggest:
            conf = f.details.get("confidence")
            row += f"<td class='suggested'>{e(str(f.details.get('suggested_label', '')))}</td>" + (
                f"<td class='num' data-v='{float(conf):.6f}'>{float(conf):.2f}</td>"
                if conf is not None
                else "<td></td>"
            )
        out.append(row + "</tr>")
    if len(items) > max_rows:
        cols = 6 if suggest else 4
        out.append(f"<tr><td colspan='{cols}' class='muted'>{len(items) - max_rows} more in findings.json</td></tr>")
    out.append("</tbody></table>")
    return out


def render_report(
    findings: Sequence[Finding],
    *,
    thumbs: Mapping[int, str],
    labels: Mapping[int, str | None],
    paths: Mapping[int, str],
    meta: Mapping[str, Any],
    max_rows_per_kind: int = 300,
    label_url: str = DEFAULT_APP_URL,
) -> str:
    """The whole report as one HTML string (no external files). `thumbs`: image id -> data URI (`thumbnail_uri`);
    `labels`, `paths`: image id -> current label, file path; `meta`: findings.json's header (checks run, n_images,
    created_at, catalog_hash, label_model). Image ids link to the label app served at `label_url`
    (`picsift.label.links`; `--label-url`)."""
    e = html.escape
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_kind[f.kind].append(f)
    kinds_present = [k for k in KINDS if by_kind.get(k)]
    checks = list(meta.get("checks") or CHECKS)
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>picsift clean report</title>",
        f"<style>{_CSS}</style></head><body><h1>picsift clean report</h1>",
        f"<div class='meta'>{e(str(meta.get('n_images', '?')))} images checked · checks: "
        f"{e(', '.join(checks))} · {e(str(meta.get('created_at', '')))} · "
        f"catalog {e(str(meta.get('catalog_hash', ''))[:12])} · image links open the label app at "
        f"{e(label_url)} (start it with <code>picsift label</code>)</div>",
        _embedding_line(meta.get("embedding") or {}),
        _label_banner(meta.get("label_model") or {}),
        *_summary(by_kind, checks),
        *_per_class(findings, labels, kinds_present),
    ]
    if not kinds_present:
        out.append("<p>No problems found.</p>")
    for check in CHECKS:
        kinds = [k for k in kinds_present if KINDS[k] == check]
        if not kinds:
            continue
        out.append(f"<h2>{e(check.capitalize())}</h2>")
        if check == "duplicates":
            out.append(_duplicates_legend())
        for k in kinds:
            items = sorted(by_kind[k], key=lambda f: -f.score)
            out += _kind_table(
                k, items, thumbs=thumbs, labels=labels, paths=paths, max_rows=max_rows_per_kind, app=label_url
            )
    out.append("<div id='zoom'><img alt='enlarged'><p></p><p class='muted'>click or Esc to close</p></div>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out)
