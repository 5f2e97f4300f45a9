// Corrections sent to the served model (`POST /v1/feedback`), awaiting review: accept or reject.
import { api, post } from "./api.js";
import { loadClasses } from "./classes.js";
import { render } from "./grid.js";
import { beginLoad, isLatest, removeItems, showView, store, targets } from "./state.js";
import { loadSummary } from "./summary.js";
import { $, report, toast } from "./ui.js";

export async function loadFeedback() {
  const seq = beginLoad();
  const data = await api("api/feedback?status=pending");
  if (!isLatest(seq)) return;
  showView("feedback", data.items);
  feedbackTitle();
  render();
}

export function feedbackTitle() {
  $("#title").textContent = store.items.length
    ? `${store.items.length} pending feedback from the served model — a accept (the image becomes training data ` +
      `with the suggested label), r reject; select several for bulk`
    : "No pending feedback (corrections sent to `picsift serve` via POST /v1/feedback appear here)";
}

// Review the given feedback ids, or the selection, or the item under the cursor.
export async function reviewFeedback(accept, ids) {
  ids = ids || targets().map((f) => f.id);
  if (!ids.length) { toast("no feedback selected"); return; }
  let r;
  try {
    r = await post(`api/feedback/${accept ? "accept" : "reject"}`, { ids });
  } catch (e) {
    if (e.status !== 409) throw e;
    r = e.body; toast(e.message, true);
  }
  const done = new Set((r.accepted || r.rejected || []).map((x) => x.id));
  if (done.size && !r.errors.length) toast(`${done.size} feedback ${accept ? "accepted into the catalog" : "rejected"}`);
  removeItems(done);
  feedbackTitle(); render();
  loadSummary().catch(report); loadClasses().catch(report);
}
