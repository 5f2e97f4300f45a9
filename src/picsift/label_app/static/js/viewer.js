// The single-image view: the image, its label keys, proposal, metadata, findings and history; or, in the
// Feedback view, a correction sent to the served model with what accepting it would do.
import { api, runParam } from "./api.js";
import { feedbackPlan, refreshCards, renderSelection, scrollToCursor } from "./grid.js";
import { moveCursor, nextPage, setCursor, setViewer, store, updateItem } from "./state.js";
import { $, esc } from "./ui.js";
import { loadImages } from "./views.js";

export function renderViewerKeys() {
  $("#v-keys").innerHTML = store.classes.slice(0, 9).map((c, i) =>
    `<button data-label="${esc(c.name)}"><kbd>${i + 1}</kbd> ${esc(c.name)}</button>`).join("");
}

// The URL names the image shown (#image=ID), so it can be shared and reloaded; the query (token) stays.
function setLink(id) {
  const url = location.pathname + location.search + (id == null ? "" : `#image=${id}`);
  if (location.pathname + location.search + location.hash !== url) history.replaceState(null, "", url);
}

function metaRows(meta) {
  return meta.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join("");
}

function openFeedbackViewer(f, idx) {
  $("#viewer-img").src = f.image_path ? `api/feedback/${f.id}/image?full=1` : "";
  $("#v-pos").textContent = `feedback ${idx + 1} / ${store.items.length}`;
  $("#v-label").textContent = `suggested: ${f.label}`;
  $("#v-keys").hidden = true;
  $("#v-proposal").innerHTML = `<div id="v-feedback">${feedbackPlan(f)}</div>` +
    `<button id="v-fb-accept"><kbd>a</kbd> accept</button> <button id="v-fb-reject"><kbd>r</kbd> reject</button>`;
  const c = (f.plan || {}).catalog_image;
  $("#v-meta").innerHTML = metaRows([
    ["model", f.predicted_label == null ? "" : `${f.predicted_label}` +
      (f.confidence != null ? ` (${(f.confidence * 100).toFixed(1)}%)` : "")],
    ["model version", f.model_version], ["comment", f.comment], ["sent", f.created_at.replace("T", " ").slice(0, 19)],
    ["catalogued as", c ? `image ${c.id}, split ${c.split || "none"}, ${c.label == null ? "unlabelled" : `labelled ${c.label}`}` : "new image"],
  ]);
  $("#v-findings").innerHTML = ""; $("#v-history").innerHTML = "";
}

export async function openViewer(idx) {
  const it = store.items[idx];
  if (!it) { if (store.viewer) closeViewer(); return; }
  setCursor(idx); setViewer(true);
  $("#viewer").hidden = false;
  renderSelection();
  if (store.mode === "feedback") { openFeedbackViewer(it, idx); return; }
  $("#v-keys").hidden = false;
  setLink(it.id);
  $("#viewer-img").src = `api/images/${it.id}/full`;
  $("#v-pos").textContent = `${idx + 1} / ${store.mode === "grid" ? store.total : store.items.length}`;
  $("#v-label").textContent = it.label ?? "unlabelled";
  const d = await api(`api/images/${it.id}?` + runParam().slice(1));
  if (!store.viewer || store.items[store.cursor]?.id !== it.id) return;  // moved on or closed meanwhile
  updateItem(it.id, { label: d.label, version: d.version, proposal: d.proposal, excluded: d.excluded });
  $("#v-label").textContent = d.label ?? "unlabelled";
  $("#v-proposal").innerHTML = d.proposal
    ? `proposed <b>${esc(d.proposal.label)}</b>` +
      (d.proposal.confidence != null ? ` (${(d.proposal.confidence * 100).toFixed(1)}%, ${esc(d.proposal.origin)})` : "") +
      ` <button id="v-accept"><kbd>a</kbd> accept</button> <button id="v-reject"><kbd>r</kbd> reject</button>`
    : (d.prediction ? `model: ${esc(d.prediction.top.map((t) => `${t.label} ${(t.probability * 100).toFixed(1)}%`).join(", "))}` +
      (d.disagrees ? ` <span class="badge differ">≠ label</span>` : "") : "");
  $("#v-meta").innerHTML = metaRows([
    ["id", d.id], ["file", d.path], ["size", d.width ? `${d.width} × ${d.height} px, ${(d.byte_size / 1024).toFixed(1)} KiB` : ""],
    ["format", [d.format, d.mode].filter(Boolean).join(" ")], ["taken", d.exif_time], ["camera", d.exif_camera],
    ["gps", d.gps ? d.gps.map((x) => x.toFixed(5)).join(", ") : ""], ["split", d.split],
    ["excluded", d.excluded ? "yes" : ""], ["duplicate of", d.duplicate_of], ["error", d.error],
  ]);
  $("#v-findings").innerHTML = d.findings.map((f) =>
    `<div class="finding"><b>${esc(f.kind)}</b>` + (f.score != null ? ` (score ${Number(f.score).toFixed(3)})` : "") +
    `<br>${esc(f.explanation || "")}` +
    (f.image_ids.length > 1 ? `<br><small>with images ${esc(f.image_ids.filter((x) => x !== d.id).join(", "))}</small>` : "") +
    `</div>`).join("");
  $("#v-history").innerHTML = d.history.slice().reverse().map((h) =>
    `<li>${esc(h.created_at.replace("T", " ").slice(0, 19))} · ${esc(h.label ?? "(none)")} · ${esc(h.status)} · ` +
    `${esc(h.origin)} · ${esc(h.annotator)}</li>`).join("");
}

// Show the viewer's image again (after any change to it).
export function refreshViewer() {
  if (store.viewer) return openViewer(store.cursor);
  return Promise.resolve();
}

export function closeViewer() {
  setViewer(false); $("#viewer").hidden = true;
  setLink(null);
  refreshCards(store.items.map((it) => it.id));
  scrollToCursor();
}

// Move the cursor (in the viewer: show the next image). Past the last loaded image of the catalog grid, the
// next page is loaded first.
export async function move(delta) {
  if (!store.items.length) return;
  const past = store.cursor + delta >= store.items.length;
  if (past && store.mode === "grid" && store.items.length < store.total) { nextPage(); await loadImages(true); }
  moveCursor(delta);
  if (store.viewer) await openViewer(store.cursor);
  else { renderSelection(); scrollToCursor(); }
}
