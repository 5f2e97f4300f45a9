// Corrections sent to the served model (`POST /v1/feedback`), awaiting review: accept or reject. Accepting
// what creates a class or relabels a labelled image asks first; every accept can be undone (u).
import { api, post } from "./api.js";
import { loadClasses } from "./classes.js";
import { render, showLoading } from "./grid.js";
import { beginLoad, isLatest, setMode, pushUndo, removeItems, showView, store, targets } from "./state.js";
import { loadSummary } from "./summary.js";
import { $, confirmDialog, esc, report, toast } from "./ui.js";
import { openViewer } from "./viewer.js";

export async function loadFeedback() {
  const seq = beginLoad();
  setMode("feedback");
  showLoading("Loading feedback…"); $("#title").textContent = "Feedback: loading… · Esc: back";
  const data = await api("api/feedback?status=pending");
  if (!isLatest(seq)) return;
  showView("feedback", data.items);
  feedbackTitle();
  render();
}

export function feedbackTitle() {
  $("#title").textContent = store.items.length
    ? `${store.items.length} pending feedback from the served model — a accept (the image becomes training data ` +
      `with the suggested label), r reject, Enter open; select several for bulk · Esc: back`
    : "No pending feedback (corrections sent to `picsift serve` via POST /v1/feedback appear here) · Esc: back";
}

// Ask before accepting what creates a class or relabels a labelled image: true to go on.
async function confirmed(items) {
  const asks = items.filter((f) => f.plan && f.plan.confirm);
  if (!asks.length) return true;
  return confirmDialog(
    `<b>Accept ${items.length} feedback?</b><ul>` + asks.map((f) => `<li>${esc(f.plan.confirm)}</li>`).join("") +
    `</ul>You can undo it with <kbd>u</kbd>.`, "Accept");
}

// Review the given feedback ids, or the selection, or the item under the cursor.
export async function reviewFeedback(accept, ids) {
  ids = ids || targets().map((f) => f.id);
  if (!ids.length) { toast("no feedback selected"); return; }
  const items = store.items.filter((f) => ids.includes(f.id));
  let confirm = false;
  if (accept) {
    if (!(await confirmed(items))) { toast("nothing accepted"); return; }
    confirm = true;
  }
  let r;
  try {
    r = await post(`api/feedback/${accept ? "accept" : "reject"}`, { ids, confirm });
  } catch (e) {
    if (e.status !== 409) throw e;
    r = e.body; toast(e.message, true);
  }
  const reviewed = r.accepted || r.rejected || [];
  const done = new Set(reviewed.map((x) => x.id));
  if (accept && reviewed.length) pushUndo({ feedback: reviewed.map((x) => ({ id: x.id, version: x.version })) });
  if (done.size && !r.errors.length) {
    toast(`${done.size} feedback ${accept ? "accepted into the catalog (u to undo)" : "rejected"}`);
  }
  removeItems(done);
  feedbackTitle(); render();
  if (store.viewer) await openViewer(store.cursor);
  loadSummary().catch(report); loadClasses().catch(report);
}

// Undo accepted feedback: the image's label as before, the feedback pending again.
export async function undoFeedback(entries) {
  let n = 0;
  for (const { id, version } of entries) {
    try {
      await post(`api/feedback/${id}/undo`, { expected_version: version });
      n += 1;
    } catch (e) { report(e); }
  }
  toast(`undone: ${n} feedback pending again`);
  if (store.mode === "feedback") await loadFeedback();
  loadSummary().catch(report); loadClasses().catch(report);
}
