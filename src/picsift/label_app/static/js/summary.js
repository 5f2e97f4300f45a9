// The header: workspace counts, the run whose predictions are shown, pending feedback, findings, the
// annotator's default name; the split and finding filters' choices.
import { api, user } from "./api.js";
import { setFindingKinds, setRun, setSplits, store } from "./state.js";
import { $, esc } from "./ui.js";

function runOption(r) {
  const acc = r.val_acc != null ? ` · val acc ${(r.val_acc * 100).toFixed(1)}%` : "";
  const tag = r.default ? " (default: latest you trained)" : r.candidate ? " (candidate of compare/tune)" : "";
  return `<option value="${esc(r.name)}">${esc(r.name)}${r.model ? ` · ${esc(r.model)}` : ""}${acc}${tag}</option>`;
}

// The run picker: every run, newest first; the default until the user picks another.
function showRuns(runs) {
  const sel = $("#run");
  const html = runs.length ? runs.map(runOption).join("") : `<option value="">no model yet</option>`;
  if (sel.dataset.html !== html) { sel.innerHTML = html; sel.dataset.html = html; }
  const names = runs.map((r) => r.name);
  if (!store.runPicked || !names.includes(store.run)) {
    const def = runs.find((r) => r.default);
    setRun(def ? def.name : "", false);
  }
  sel.value = store.run;
  const chosen = runs.find((r) => r.name === store.run);
  sel.title = chosen ? `predictions of run ${chosen.name}` + (chosen.model ? ` (${chosen.model})` : "") +
    (chosen.candidate ? ": a candidate trained by compare or tune" : "") : "no trained run yet: press Train";
}

function showFindingKinds(kinds) {
  if (JSON.stringify(kinds) === JSON.stringify(store.findingKinds)) return;
  setFindingKinds(kinds);
  const sel = $("#filter-finding"), cur = sel.value;
  sel.innerHTML = `<option value="">any</option>` +
    Object.entries(kinds).map(([k, n]) => `<option value="${esc(k)}">${esc(k)} (${n})</option>`).join("");
  sel.value = kinds[cur] ? cur : "";
}

export async function loadSummary() {
  const s = await api("api/summary");
  $("#summary").textContent =
    `${s.images} images · ${s.labeled} labelled · ${s.unlabeled} unlabelled · ${s.proposals} proposals` +
    (s.findings ? ` · ${s.findings} findings` : "");
  showRuns(s.runs || []);
  showFindingKinds(s.finding_kinds || {});
  $("#btn-feedback").textContent = s.feedback ? `Feedback (${s.feedback})` : "Feedback";
  $("#btn-findings").textContent = s.findings ? `Findings (${s.findings})` : "Findings";
  if (!user()) $("#annotator").value = s.annotator;
  if (JSON.stringify(s.splits) !== JSON.stringify(store.splits)) {
    setSplits(s.splits);
    const sel = $("#filter-split"), cur = sel.value;
    sel.innerHTML = `<option value="">any</option>` + s.splits.map((x) => `<option>${esc(x)}</option>`).join("");
    sel.value = cur;
  }
  document.documentElement.style.setProperty("--header", `${$("header").offsetHeight}px`);
}
