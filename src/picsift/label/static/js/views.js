// What the grid shows: a page of the catalog, the next batch to label, clusters, or pending feedback.
import { api } from "./api.js";
import { loadFeedback } from "./feedback.js";
import { render } from "./grid.js";
import { beginLoad, isLatest, setPage, showView, startGrid, store } from "./state.js";
import { $, toast } from "./ui.js";

function query() {
  const q = new URLSearchParams({
    view: $("#view").value, sort: $("#sort").value, offset: store.offset, limit: store.pageSize,
  });
  if ($("#filter-class").value) q.set("label", $("#filter-class").value);
  if ($("#filter-split").value) q.set("split", $("#filter-split").value);
  return q;
}

export async function loadImages(append = false) {
  startGrid(append);
  const seq = beginLoad();
  const page = await api("api/images?" + query());
  if (!isLatest(seq)) return;
  setPage(page.items, page.total, append);
  $("#title").textContent = `${store.total} images` + ($("#view").value !== "all" ? ` (${$("#view").value})` : "");
  render();
}

export async function loadQueue() {
  toast("choosing the next batch…");
  const seq = beginLoad();
  const batch = await api("api/queue?n=24");
  const ids = batch.items.map((i) => i.image_id);
  const items = ids.length ? (await api("api/images?ids=" + ids.join(",") + "&limit=500")).items : [];
  if (!isLatest(seq)) return;
  showView("queue", items);
  $("#title").textContent = batch.run
    ? `Next batch: ${ids.length} most informative unlabelled images (uncertainty under ${batch.run} + diversity)`
    : `Next batch: ${ids.length} diverse unlabelled images (train a model to rank by uncertainty)`;
  render();
}

export async function loadClusters() {
  const seq = beginLoad();
  const data = await api("api/clusters");
  const clusters = data.clusters.slice(0, 30);
  const ids = clusters.flatMap((c) => c.image_ids);
  const items = ids.length ? (await api("api/images?ids=" + ids.join(",") + "&limit=2000")).items : [];
  if (!isLatest(seq)) return;
  showView("clusters", items, clusters);
  $("#title").textContent = store.clusters.length
    ? `${data.clusters.length} clusters of unlabelled images — click a cluster's title to select it, ` +
      `deselect the odd ones, press a class key`
    : "No clusters yet: press Auto-label and choose 'cluster' (or run `picsift autolabel --method cluster`)";
  render();
}

// Load the current view again.
export function reload() {
  if (store.mode === "feedback") return loadFeedback();
  if (store.mode === "queue") return loadQueue();
  if (store.mode === "clusters") return loadClusters();
  return loadImages();
}
