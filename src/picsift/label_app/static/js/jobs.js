// Background jobs started from the header: train a model, auto-label; their progress in the side panel.
import { api, post } from "./api.js";
import { loadClasses } from "./classes.js";
import { setJobTimer, stopJobTimer } from "./state.js";
import { loadSummary } from "./summary.js";
import { $, esc, report, toast } from "./ui.js";
import { reload } from "./views.js";

function showJob(job) {
  const p = job.progress || {};
  const total = p.total_epochs || 0, done = p.epochs_done || 0;
  const pct = job.status === "done" ? 100 : total ? Math.round((100 * done) / total) : 0;
  let text = `${job.kind}: ${job.status}`;
  if (job.kind === "train") {
    text += ` · epoch ${done}/${total || "?"}`;
    if (p.last && p.last.val_acc != null) text += ` · val acc ${(p.last.val_acc * 100).toFixed(1)}%`;
  }
  if (job.status === "done" && job.result) {
    const r = job.result;
    text += job.kind === "train"
      ? ` · run ${r.run_id}` + (r.val_acc != null ? ` · val acc ${(r.val_acc * 100).toFixed(1)}%` : "")
      : ` · ${r.proposed ? `${r.proposed} proposals` : `${r.clusters} clusters`}`;
  }
  if (job.error) text += ` · ${job.error}`;
  $("#job").innerHTML = `<div data-testid="job-status">${esc(text)}</div><div class="bar"><div style="width:${pct}%"></div></div>`;
}

function pollJob(id) {
  setJobTimer(setInterval(async () => {
    try {
      const job = await api(`api/jobs/${id}`);
      showJob(job);
      if (job.status !== "running") {
        stopJobTimer();
        toast(job.status === "done" ? `${job.kind} finished` : `${job.kind} failed: ${job.error}`, job.status !== "done");
        loadSummary().catch(report); loadClasses().catch(report); reload().catch(report);
      }
    } catch (e) { stopJobTimer(); report(e); }
  }, 1000));
}

export async function startTrain() {
  const epochs = prompt("Train a model on the labelled images. Epochs:", "5");
  if (!epochs) return;
  const job = await post("api/jobs/train", { epochs: Number(epochs) });
  showJob(job); pollJob(job.id);
}

export async function startAutolabel() {
  const method = prompt("Auto-label method: 'model' (proposals from the latest run) or 'cluster' (group similar images)", "model");
  if (!method) return;
  let threshold = 0.9;
  if (method === "model") {
    const t = prompt("Propose labels whose confidence is at least:", "0.9");
    if (!t) return;
    threshold = Number(t);
  }
  const job = await post("api/jobs/autolabel", { method, threshold });
  showJob(job); pollJob(job.id);
}
