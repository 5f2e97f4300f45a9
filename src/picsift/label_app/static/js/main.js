// picsift label: plain JavaScript modules, no build step. Talks to the JSON API under api/.
import { excludeImages, includeImages, labelInViewer, resolveProposals, viewerProposal } from "./actions.js";
import { setUser, user } from "./api.js";
import { addClass, loadClasses, mergeClasses, renameClass } from "./classes.js";
import { loadFeedback, reviewFeedback } from "./feedback.js";
import { renderSelection } from "./grid.js";
import { startAutolabel, startTrain } from "./jobs.js";
import { onKey } from "./keyboard.js";
import {
  clearSelection, nextPage, select, selectRange, setAnchor, setCursor, setRun, store, targets, toggleSelected,
} from "./state.js";
import { loadSummary } from "./summary.js";
import { $, closeDialog, focusGrid, report } from "./ui.js";
import { closeViewer, move, openViewer } from "./viewer.js";
import { loadClusters, loadFindings, loadGrid, loadImages, loadQueue, openLinked, reload } from "./views.js";

// The image a link names: #image=ID, or ?image=ID (the token may sit in the same query).
function linkedImage() {
  const hash = new URLSearchParams(location.hash.slice(1)).get("image");
  const id = Number(hash ?? new URLSearchParams(location.search).get("image"));
  return Number.isInteger(id) && id > 0 ? id : null;
}

function onGridClick(e) {
  if (e.target.id === "load-more") { nextPage(); loadImages(true).catch(report); return; }
  const fbBtn = e.target.closest("[data-fb]");
  if (fbBtn) {
    const id = Number(fbBtn.closest(".card").dataset.id);
    reviewFeedback(fbBtn.dataset.fb === "accept", [id]).catch(report); return;
  }
  const clusterBtn = e.target.closest(".sel-cluster");
  if (clusterBtn) {
    const shown = new Set(store.items.map((it) => it.id));
    select(store.clusters[Number(clusterBtn.dataset.cluster)].unlabeled_ids.filter((id) => shown.has(id)));
    renderSelection(); return;
  }
  const el = e.target.closest(".card");
  if (!el) return;
  const idx = Number(el.dataset.idx), id = Number(el.dataset.id);
  if (e.shiftKey && store.anchor !== null) {
    selectRange(Math.min(store.anchor, idx), Math.max(store.anchor, idx));
  } else if (e.ctrlKey || e.metaKey || store.selected.size || store.mode === "clusters") {
    toggleSelected(id);
    setAnchor(idx);
  } else {
    setAnchor(idx);
  }
  setCursor(idx);
  renderSelection();
}

function bind() {
  $("#annotator").value = user();
  $("#annotator").addEventListener("change", (e) => { setUser(e.target.value.trim()); loadSummary(); });
  for (const id of ["#view", "#filter-class", "#filter-split", "#filter-finding", "#sort"]) {
    $(id).addEventListener("change", () => { loadImages().catch(report); loadClasses().catch(report); });
  }
  $("#run").addEventListener("change", (e) => {
    setRun(e.target.value, true);
    loadSummary().catch(report); reload().catch(report);
  });
  // Controls never keep the keyboard: after a choice or a click, keys go to the grid again.
  document.addEventListener("change", (e) => { if (e.target.matches("select, input")) focusGrid(); });
  document.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (b && !b.closest("#dialog")) focusGrid();
  });
  $("#dialog-ok").addEventListener("click", () => closeDialog(true));
  $("#dialog-cancel").addEventListener("click", () => closeDialog(false));
  $("#btn-grid").addEventListener("click", () => { if (store.viewer) closeViewer(); loadGrid().catch(report); });
  $("#btn-findings").addEventListener("click", () => { if (store.viewer) closeViewer(); loadFindings().catch(report); });
  window.addEventListener("hashchange", () => {
    const id = linkedImage();
    if (id !== null && !(store.viewer && store.items[store.cursor]?.id === id)) openLinked(id, openViewer).catch(report);
  });
  $("#classes").addEventListener("click", (e) => {
    const li = e.target.closest("li");
    if (!li) return;
    const sel = $("#filter-class");
    sel.value = sel.value === li.dataset.name ? "" : li.dataset.name;
    loadImages().catch(report); loadClasses().catch(report);
  });
  $("#new-class").addEventListener("submit", (e) => { e.preventDefault(); addClass().catch(report); focusGrid(); });
  $("#btn-rename").addEventListener("click", async () => {
    try { if (await renameClass()) await reload(); } catch (err) { report(err); }
  });
  $("#btn-merge").addEventListener("click", async () => {
    try { if (await mergeClasses()) await reload(); } catch (err) { report(err); }
  });
  $("#btn-queue").addEventListener("click", () => loadQueue().catch(report));
  $("#btn-feedback").addEventListener("click", () => loadFeedback().catch(report));
  $("#btn-exclude").addEventListener("click", () => excludeImages(targets()).catch(report));
  $("#btn-include").addEventListener("click", () => includeImages(targets()).catch(report));
  $("#btn-clusters").addEventListener("click", () => loadClusters().catch(report));
  $("#btn-train").addEventListener("click", () => startTrain().catch(report));
  $("#btn-autolabel").addEventListener("click", () => startAutolabel().catch(report));
  $("#btn-select-all").addEventListener("click", () => { select(store.items.map((it) => it.id)); renderSelection(); });
  $("#btn-clear").addEventListener("click", () => { clearSelection(); renderSelection(); });
  $("#btn-accept").addEventListener("click", () => resolveProposals(true).catch(report));
  $("#btn-reject").addEventListener("click", () => resolveProposals(false).catch(report));
  $("#btn-more").addEventListener("click", () => loadImages().catch(report));
  $("#btn-more").hidden = true;
  $("#grid").addEventListener("click", onGridClick);
  $("#grid").addEventListener("dblclick", (e) => {
    const el = e.target.closest(".card");
    if (el) openViewer(Number(el.dataset.idx)).catch(report);
  });
  $("#v-keys").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (b) labelInViewer(b.dataset.label).catch(report);
  });
  $("#v-proposal").addEventListener("click", (e) => {
    if (e.target.closest("#v-accept")) viewerProposal(true).catch(report);
    if (e.target.closest("#v-reject")) viewerProposal(false).catch(report);
    const fb = e.target.closest("#v-fb-accept, #v-fb-reject");
    const it = store.items[store.cursor];
    if (fb && it) reviewFeedback(fb.id === "v-fb-accept", [it.id]).catch(report);
  });
  $("#v-prev").addEventListener("click", () => move(-1).catch(report));
  $("#v-next").addEventListener("click", () => move(1).catch(report));
  $("#v-close").addEventListener("click", closeViewer);
  document.addEventListener("keydown", onKey);
}

async function main() {
  bind();
  try {
    await loadSummary();
    await loadClasses();
    await loadImages();
    const id = linkedImage();
    if (id !== null) await openLinked(id, openViewer);
  } catch (e) { report(e); }
  focusGrid();
  document.body.dataset.ready = "1";
}

main();
