// picsift label: plain JavaScript modules, no build step. Talks to the JSON API under api/.
import { excludeImages, includeImages, labelInViewer, resolveProposals, viewerProposal } from "./actions.js";
import { setUser, user } from "./api.js";
import { addClass, loadClasses, mergeClasses, renameClass } from "./classes.js";
import { loadFeedback, reviewFeedback } from "./feedback.js";
import { renderSelection } from "./grid.js";
import { startAutolabel, startTrain } from "./jobs.js";
import { onKey } from "./keyboard.js";
import {
  clearSelection, nextPage, select, selectRange, setAnchor, setCursor, store, targets, toggleSelected,
} from "./state.js";
import { loadSummary } from "./summary.js";
import { $, report } from "./ui.js";
import { closeViewer, move, openViewer } from "./viewer.js";
import { loadClusters, loadImages, loadQueue, reload } from "./views.js";

function onGridClick(e) {
  if (e.target.id === "load-more") { nextPage(); loadImages(true).catch(report); return; }
  const fbBtn = e.target.closest("[data-fb]");
  if (fbBtn) {
    const id = Number(fbBtn.closest(".card").dataset.id);
    reviewFeedback(fbBtn.dataset.fb === "accept", [id]).catch(report); return;
  }
  const clusterBtn = e.target.closest(".sel-cluster");
  if (clusterBtn) {
    select(store.clusters[Number(clusterBtn.dataset.cluster)].image_ids);
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
  for (const id of ["#view", "#filter-class", "#filter-split", "#sort"]) {
    $(id).addEventListener("change", () => { loadImages().catch(report); loadClasses().catch(report); });
  }
  $("#classes").addEventListener("click", (e) => {
    const li = e.target.closest("li");
    if (!li) return;
    const sel = $("#filter-class");
    sel.value = sel.value === li.dataset.name ? "" : li.dataset.name;
    loadImages().catch(report); loadClasses().catch(report);
  });
  $("#new-class").addEventListener("submit", (e) => { e.preventDefault(); addClass().catch(report); });
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
  });
  $("#v-prev").addEventListener("click", () => move(-1));
  $("#v-next").addEventListener("click", () => move(1));
  $("#v-close").addEventListener("click", closeViewer);
  document.addEventListener("keydown", onKey);
}

async function main() {
  bind();
  try {
    await loadSummary();
    await loadClasses();
    await loadImages();
  } catch (e) { report(e); }
  document.body.dataset.ready = "1";
}

main();
