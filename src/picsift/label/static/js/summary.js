// The header: workspace counts, pending feedback, the annotator's default name; the split filter's choices.
import { api, user } from "./api.js";
import { setSplits, store } from "./state.js";
import { $, esc } from "./ui.js";

export async function loadSummary() {
  const s = await api("api/summary");
  $("#summary").textContent =
    `${s.images} images · ${s.labeled} labelled · ${s.unlabeled} unlabelled · ${s.proposals} proposals` +
    (s.findings ? ` · ${s.findings} findings` : "") + (s.latest_run ? ` · model ${s.latest_run}` : " · no model yet");
  $("#btn-feedback").textContent = s.feedback ? `Feedback (${s.feedback})` : "Feedback";
  if (!user()) $("#annotator").value = s.annotator;
  if (JSON.stringify(s.splits) !== JSON.stringify(store.splits)) {
    setSplits(s.splits);
    const sel = $("#filter-split"), cur = sel.value;
    sel.innerHTML = `<option value="">any</option>` + s.splits.map((x) => `<option>${esc(x)}</option>`).join("");
    sel.value = cur;
  }
}
