// Label changes from the grid and the viewer: label, accept/reject proposals, exclude/include, undo.
import { api, post } from "./api.js";
import { loadClasses } from "./classes.js";
import { reviewFeedback, undoFeedback } from "./feedback.js";
import { refreshCards } from "./grid.js";
import { followUndo, popUndo, pushUndo, restoreSelection, store, takeSelection, targets, updateItem } from "./state.js";
import { loadSummary } from "./summary.js";
import { report, toast } from "./ui.js";
import { move, openViewer, refreshViewer } from "./viewer.js";

// After any change: redraw the changed cards, the viewer's panel, the class counts and the header.
function changed(ids, classes = true) {
  refreshCards(ids);
  refreshViewer().catch(report);
  if (classes) loadClasses().catch(report);
  loadSummary().catch(report);
}

// Label items (null removes the label), based on the versions the page holds: a write that lost to
// someone else's is shown as a conflict with the other writer's label.
export async function applyLabel(items, label) {
  if (!items.length) return;
  const expected = Object.fromEntries(items.map((it) => [it.id, it.version]));
  let result;
  try {
    result = await post("api/labels", { image_ids: items.map((it) => it.id), label, expected_versions: expected });
  } catch (e) {
    if (e.status !== 409) throw e;
    result = e.body;
    toast(`conflict: ${e.message}`, true);
  }
  for (const a of result.applied) updateItem(a.image_id, { label: a.label, version: a.version, proposal: null });
  if (result.applied.length) pushUndo(result.applied.map((a) => ({ id: a.image_id, version: a.version })));
  if (result.conflicts.length) {  // show the other writer's label
    const ids = result.conflicts.map((c) => c.image_id);
    const fresh = await api("api/images?ids=" + ids.join(",") + "&limit=500");
    for (const it of fresh.items) updateItem(it.id, it);
  } else {
    toast(label === null ? `label removed from ${result.applied.length}` : `${result.applied.length} → ${label}`);
  }
  changed(items.map((it) => it.id));
  return result;
}

export async function undo() {
  const entry = popUndo();
  if (!entry) { toast("nothing to undo"); return; }
  if (entry.feedback) { await undoFeedback(entry.feedback); return; }
  if (entry.exclusion) {  // an exclusion is one catalog action: undo it as a whole
    const r = await post("api/exclusions/undo", { action_id: entry.exclusion });
    for (const id of r.images) updateItem(id, { excluded: false });
    toast(`included again (${r.images.length})`);
    changed(r.images, false);
    return;
  }
  const ids = [];
  for (const { id, version } of entry) {
    try {
      const r = await post(`api/images/${id}/undo`, { expected_version: version });
      updateItem(id, { label: r.label, version: r.version });
      followUndo(id, version, r.version);
      ids.push(id);
    } catch (e) { report(e); }
  }
  toast(`undone (${ids.length})`);
  changed(ids);
}

export async function excludeImages(items) {
  items = items.filter((it) => !it.excluded);
  if (!items.length) { toast("already excluded"); return; }
  const ids = items.map((it) => it.id);
  const r = await post("api/exclusions", { image_ids: ids, reason: "excluded in the labelling app" });
  for (const id of ids) updateItem(id, { excluded: true });
  pushUndo({ exclusion: r.action_id });
  toast(`${ids.length} excluded from training (u to undo)`);
  changed(ids, false);
}

export async function includeImages(items) {
  const ids = items.filter((it) => it.excluded).map((it) => it.id);
  if (!ids.length) { toast("no excluded image in the selection"); return; }
  let r;
  try {
    r = await post("api/exclusions/include", { image_ids: ids });
  } catch (e) {
    if (e.status !== 409) throw e;
    r = e.body; toast(e.message, true);
  }
  for (const id of r.included) updateItem(id, { excluded: false });
  if (!r.conflicts.length) toast(`${r.included.length} included again`);
  changed(ids, false);
}

// Accept or reject the proposals of the selection (or the cursor's item); in the feedback view, review feedback.
export async function resolveProposals(accept) {
  if (store.mode === "feedback") return reviewFeedback(accept);
  const its = targets().filter((it) => it.proposal);
  if (!its.length) { toast("no proposals in the selection"); return; }
  let r;
  try {
    r = await post(`api/proposals/${accept ? "accept" : "reject"}`, { ids: its.map((it) => it.proposal.id) });
  } catch (e) {
    if (e.status !== 409) throw e;
    r = e.body; toast(e.message, true);
  }
  const done = new Set([...(r.accepted || []), ...(r.rejected || [])]);
  const acceptedImages = new Set(its.filter((it) => (r.accepted || []).includes(it.proposal.id)).map((it) => it.id));
  const fresh = await api("api/images?ids=" + its.map((it) => it.id).join(",") + "&limit=500");
  for (const it of fresh.items) updateItem(it.id, it);
  const entry = fresh.items.filter((f) => acceptedImages.has(f.id)).map((f) => ({ id: f.id, version: f.version }));
  if (entry.length) pushUndo(entry);
  toast(`${accept ? "accepted" : "rejected"} ${done.size}`);
  changed(its.map((it) => it.id));
}

// In the viewer: label the image shown, then show the next one.
export async function labelInViewer(label) {
  const it = store.items[store.cursor];
  if (!it) return;
  const r = await applyLabel([it], label);
  const more = store.cursor < store.items.length - 1 || (store.mode === "grid" && store.items.length < store.total);
  if (r && r.applied.length && more) await move(1);
  else await openViewer(store.cursor);
}

// In the viewer: accept or reject the shown image's proposal alone, whatever is selected in the grid.
export async function viewerProposal(accept) {
  const saved = takeSelection();
  try { await resolveProposals(accept); } finally { restoreSelection(saved); }
  if (accept && store.cursor < store.items.length - 1) await move(1); else await openViewer(store.cursor);
}
