// The single-image view: the image, its label keys, proposal, metadata, findings and history.
import { api } from "./api.js";
import { refreshCards, renderSelection, scrollToCursor } from "./grid.js";
import { moveCursor, setCursor, setViewer, store, updateItem } from "./state.js";
import { $, esc, report } from "./ui.js";

export function renderViewerKeys() {
  $("#v-keys").innerHTML = store.classes.slice(0, 9).map((c, i) =>
    `<button data-label="${esc(c.name)}"><kbd>${i + 1}</kbd> ${esc(c.name)}</button>`).join("");
}

export async function openViewer(idx) {
  const it = store.items[idx];
  if (!it) return;
  setCursor(idx); setViewer(true);
  $("#viewer").hidden = false;
  $("#viewer-img").src = `api/images/${it.id}/full`;
  $("#v-pos").textContent = `${idx + 1} / ${store.items.length}`;
  $("#v-label").textContent = it.label ?? "unlabelled";
  renderSelection();
  const d = await api(`api/images/${it.id}`);
  if (store.items[store.cursor]?.id !== it.id) return;  // moved on meanwhile
  updateItem(it.id, { label: d.label, version: d.version, proposal: d.proposal });
  $("#v-label").textContent = d.label ?? "unlabelled";
  $("#v-proposal").innerHTML = d.proposal
    ? `proposed <b>${esc(d.proposal.label)}</b>` +
      (d.proposal.confidence != null ? ` (${(d.proposal.confidence * 100).toFixed(1)}%, ${esc(d.proposal.origin)})` : "") +
      ` <button id="v-accept"><kbd>a</kbd> accept</button> <button id="v-reject"><kbd>r</kbd> reject</button>`
    : (d.prediction ? `model: ${esc(d.prediction.top.map((t) => `${t.label} ${(t.probability * 100).toFixed(1)}%`).join(", "))}` : "");
  const meta = [
    ["file", d.path], ["size", d.width ? `${d.width} × ${d.height} px, ${(d.byte_size / 1024).toFixed(1)} KiB` : ""],
    ["format", [d.format, d.mode].filter(Boolean).join(" ")], ["taken", d.exif_time], ["camera", d.exif_camera],
    ["gps", d.gps ? d.gps.map((x) => x.toFixed(5)).join(", ") : ""], ["split", d.split],
    ["excluded", d.excluded ? "yes" : ""], ["duplicate of", d.duplicate_of], ["error", d.error],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  $("#v-meta").innerHTML = meta.map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join("");
  $("#v-findings").innerHTML = d.findings.map((f) =>
    `<div class="finding"><b>${esc(f.kind)}</b>` + (f.score != null ? ` (score ${Number(f.score).toFixed(3)})` : "") +
    `<br>${esc(f.explanation || "")}` +
    (f.image_ids.length > 1 ? `<br><small>with images ${esc(f.image_ids.filter((x) => x !== d.id).join(", "))}</small>` : "") +
    `</div>`).join("");
  $("#v-history").innerHTML = d.history.slice().reverse().map((h) =>
    `<li>${esc(h.created_at.replace("T", " ").slice(0, 19))} · ${esc(h.label ?? "(none)")} · ${esc(h.status)} · ` +
    `${esc(h.origin)} · ${esc(h.annotator)}</li>`).join("");
}

export function closeViewer() {
  setViewer(false); $("#viewer").hidden = true;
  refreshCards(store.items.map((it) => it.id));
  scrollToCursor();
}

// Move the cursor (in the viewer: show the next image).
export function move(delta) {
  if (!store.items.length) return;
  moveCursor(delta);
  if (store.viewer) openViewer(store.cursor).catch(report);
  else { renderSelection(); scrollToCursor(); }
}
