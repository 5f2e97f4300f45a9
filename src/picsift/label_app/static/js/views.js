// What the grid shows: a page of the catalog, the next batch to label, clusters, pending feedback, or one
// image opened from a link.
import { api, runParam } from "./api.js";
import { loadFeedback } from "./feedback.js";
import { render, showLoading } from "./grid.js";
import { beginLoad, isLatest, setMode, setPage, showView, startGrid, store } from "./state.js";
import { $, toast } from "./ui.js";

const LOADING_DELAY_MS = 150;  // a quick answer replaces the cards without a flash of "loading"

function query() {
  const q = new URLSearchParams({
    view: $("#view").value, sort: $("#sort").value, offset: store.offset, limit: store.pageSize,
  });
  if ($("#filter-class").value) q.set("label", $("#filter-class").value);
  if ($("#filter-split").value) q.set("split", $("#filter-split").value);
  if ($("#filter-finding").value) q.set("finding", $("#filter-finding").value);
  if (store.run) q.set("run", store.run);
  return q;
}

// Show the loading indicator when a request of this load takes a while (predictions are computed on demand).
function loadingAfterDelay(seq, text) {
  return setTimeout(() => { if (isLatest(seq)) { showLoading(text); $("#title").textContent = text; } }, LOADING_DELAY_MS);
}

function predictionsText() {
  return store.run ? ` and the predictions of ${store.run} (the first time takes a while)` : "";
}

export async function loadImages(append = false) {
  startGrid(append);
  const seq = beginLoad();
  const timer = append ? null : loadingAfterDelay(seq, `Loading images${predictionsText()}…`);
  let page;
  try { page = await api("api/images?" + query()); } finally { clearTimeout(timer); }
  if (!isLatest(seq)) return;
  setPage(page.items, page.total, append);
  const view = $("#view").value, kind = $("#filter-finding").value;
  $("#title").textContent = `${store.total} images` + (view !== "all" ? ` (${$("#view").selectedOptions[0].text})` : "") +
    (kind ? ` with a ${kind} finding` : "") + ($("#sort").value === "finding" ? ", highest finding score first" : "");
  render();
}

// The images the findings of `picsift clean` name, highest score first.
export function loadFindings() {
  $("#view").value = "findings"; $("#sort").value = "finding";
  return loadImages();
}

// Back to the catalog grid (from the queue, clusters, feedback or a linked image).
export function loadGrid() {
  if ($("#view").value === "findings") $("#view").value = "all";
  if ($("#sort").value === "finding") $("#sort").value = "id";
  $("#filter-finding").value = "";
  return loadImages();
}

export async function loadQueue() {
  const seq = beginLoad();
  setMode("queue");
  showLoading("Choosing the next batch…"); $("#title").textContent = "Next batch: choosing… · Esc: back";
  const batch = await api("api/queue?n=24" + runParam());
  const ids = batch.items.map((i) => i.image_id);
  const items = ids.length ? (await api("api/images?ids=" + ids.join(",") + "&limit=500" + runParam())).items : [];
  if (!isLatest(seq)) return;
  showView("queue", items);
  const n = items.length;
  $("#title").textContent = !n
    ? `Next batch: no unlabelled images left: every image has a label` + (batch.run ? ` (model ${batch.run})` : "")
    : batch.run
      ? `Next batch: ${n} most informative unlabelled images (uncertainty under ${batch.run} + diversity) · Esc: back`
      : `Next batch: ${n} diverse unlabelled images (train a model to rank by uncertainty) · Esc: back`;
  render();
}

export async function loadClusters() {
  const seq = beginLoad();
  setMode("clusters");
  showLoading("Loading the clusters…"); $("#title").textContent = "Clusters: loading… · Esc: back";
  const data = await api("api/clusters");
  const clusters = data.clusters.slice(0, 30);
  const ids = clusters.flatMap((c) => c.image_ids);
  const items = ids.length ? (await api("api/images?ids=" + ids.join(",") + "&limit=2000" + runParam())).items : [];
  if (!isLatest(seq)) return;
  showView("clusters", items, clusters);
  const unlabeled = data.clusters.reduce((n, c) => n + c.unlabeled_ids.length, 0);
  $("#title").textContent = store.clusters.length
    ? `${data.clusters.length} clusters from \`${data.source}\` (${unlabeled} unlabelled images) — click a ` +
      `cluster's title to select its unlabelled images, deselect the odd ones, press a class key · Esc: back`
    : "No clusters yet: run `picsift cluster`, or press Auto-label and choose 'cluster'";
  render();
}

// One image named by a link (#image=ID): in the grid's page when it is there, else on its own.
export async function openLinked(id, openViewer) {
  let idx = store.items.findIndex((it) => it.id === id);
  if (idx < 0) {
    const found = await api(`api/images?ids=${id}&limit=1` + runParam());
    if (!found.items.length) { toast(`no image ${id} in this workspace`, true); return; }
    showView("link", found.items);
    $("#title").textContent = `Image ${id} (from a link) · Grid or Esc: all images`;
    render();
    idx = 0;
  }
  await openViewer(idx);
}

// Load the current view again.
export function reload() {
  if (store.mode === "feedback") return loadFeedback();
  if (store.mode === "queue") return loadQueue();
  if (store.mode === "clusters") return loadClusters();
  if (store.mode === "link") return loadGrid();
  return loadImages();
}
