// The app's one store. Every module reads it; only the functions below change it.

// Page size of the catalog grid: 200, or the URL's ?page_size= (1-2000).
const askedPageSize = Number(new URLSearchParams(location.search).get("page_size"));

export const store = {
  classes: [], splits: [], findingKinds: {},
  items: [], total: 0, offset: 0,
  pageSize: askedPageSize >= 1 && askedPageSize <= 2000 ? Math.floor(askedPageSize) : 200,
  cursor: 0, selected: new Set(), anchor: null,
  mode: "grid",            // grid | queue | clusters | feedback | link (one image opened from a link)
  clusters: [], undo: [], viewer: false, jobTimer: null, seq: 0,
  run: "", runPicked: false,  // the run whose predictions are shown; picked by the user, or the default
  dialog: null,           // the open confirmation: {resolve}
};

export function setClasses(classes) { store.classes = classes; }
export function setSplits(splits) { store.splits = splits; }
export function setFindingKinds(kinds) { store.findingKinds = kinds; }
export function setRun(name, picked) { store.run = name; if (picked) store.runPicked = true; }
export function setDialog(d) { store.dialog = d; }

// ---- loading: a later request wins, stale responses are dropped -----------------------------
export function beginLoad() { return ++store.seq; }
export function isLatest(seq) { return seq === store.seq; }

// The catalog grid: a new listing starts at the top with nothing selected; "load more" appends a page.
export function startGrid(append) {
  store.mode = "grid";
  if (!append) { store.offset = 0; store.cursor = 0; store.selected.clear(); }
}
export function nextPage() { store.offset += store.pageSize; }
export function setPage(items, total, append) {
  store.items = append ? store.items.concat(items) : items;
  store.total = total;
}

// A view being loaded: nothing to act on until its items arrive, and Esc already leaves it.
export function setMode(mode) {
  store.mode = mode; store.items = []; store.total = 0; store.cursor = 0; store.selected.clear();
}

// Another view (queue | clusters | feedback | link): its items, cursor on the first, nothing selected.
export function showView(mode, items, clusters = store.clusters) {
  store.mode = mode; store.cursor = 0; store.selected.clear();
  store.clusters = clusters;
  store.items = items;
  store.total = items.length;
}

// ---- items --------------------------------------------------------------------------------------
export function updateItem(id, fields) {
  for (const it of store.items) if (it.id === id) Object.assign(it, fields);
}

// Drop items (reviewed feedback); the cursor stays on the same item when it remains.
export function removeItems(ids) {
  const current = store.items[store.cursor];
  store.items = store.items.filter((f) => !ids.has(f.id));
  for (const id of ids) store.selected.delete(id);
  store.total = store.items.length;
  const stay = current ? store.items.findIndex((f) => f.id === current.id) : -1;
  store.cursor = Math.max(0, Math.min(stay >= 0 ? stay : store.cursor, store.items.length - 1));
}

// ---- cursor and selection -------------------------------------------------------------------
export function setCursor(idx) { store.cursor = idx; }
export function moveCursor(delta) {
  store.cursor = Math.max(0, Math.min(store.items.length - 1, store.cursor + delta));
}
export function setAnchor(idx) { store.anchor = idx; }
export function toggleSelected(id) {
  if (store.selected.has(id)) store.selected.delete(id); else store.selected.add(id);
}
export function select(ids) { for (const id of ids) store.selected.add(id); }
export function selectRange(from, to) {
  for (let i = from; i <= to; i++) store.selected.add(store.items[i].id);
}
export function clearSelection() { store.selected.clear(); }
// Set the selection aside (an action on the cursor's item alone), and put it back afterwards.
export function takeSelection() {
  const saved = new Set(store.selected);
  store.selected.clear();
  return saved;
}
export function restoreSelection(saved) { store.selected = saved; }

// The selection, or else the item under the cursor.
export function targets() {
  if (store.selected.size) return store.items.filter((it) => store.selected.has(it.id));
  const it = store.items[store.cursor];
  return it ? [it] : [];
}

// ---- viewer, undo, jobs -----------------------------------------------------------------------
export function setViewer(open) { store.viewer = open; }
export function pushUndo(entry) { store.undo.push(entry); }
export function popUndo() { return store.undo.pop(); }
// After undoing the label write that left image `id` at version `undone`, the undo wrote version `now`: an older
// entry whose write was the one just before (version undone - 1) now expects `now`, so the next u steps back
// further instead of being refused as stale. A change by someone else in between keeps the older entry stale.
export function followUndo(id, undone, now) {
  for (let i = store.undo.length - 1; i >= 0; i--) {
    const hit = Array.isArray(store.undo[i]) ? store.undo[i].find((x) => x.id === id) : undefined;
    if (hit) { if (hit.version === undone - 1) hit.version = now; return; }
  }
}
export function setJobTimer(timer) { clearInterval(store.jobTimer); store.jobTimer = timer; }
export function stopJobTimer() { clearInterval(store.jobTimer); }
