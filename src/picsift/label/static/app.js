// picsift label: plain JavaScript, no build step. Talks to the JSON API under api/.
"use strict";

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");

const state = {
  classes: [], items: [], total: 0, offset: 0, pageSize: 200,
  cursor: 0, selected: new Set(), anchor: null,
  mode: "grid",            // grid | queue | clusters | feedback
  clusters: [], undo: [], viewer: false, splits: [], jobTimer: null, seq: 0,
};

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function user() { return localStorage.getItem("picsift-user") || ""; }

async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (user()) headers["X-Picsift-User"] = user();
  if (TOKEN) headers["X-Picsift-Token"] = TOKEN;
  // body[data-pending] counts requests in flight, so scripts (and tests) can wait for the app to settle.
  document.body.dataset.pending = String(Number(document.body.dataset.pending || 0) + 1);
  let res, body = null;
  try {
    res = await fetch(path, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
    try { body = await res.json(); } catch (e) { body = null; }
  } finally {
    document.body.dataset.pending = String(Number(document.body.dataset.pending) - 1);
  }
  if (!res.ok) {
    const err = new Error((body && body.detail) || `${res.status} ${res.statusText}`);
    err.status = res.status; err.body = body;
    throw err;
  }
  return body;
}
const post = (path, data) => api(path, { method: "POST", body: JSON.stringify(data) });

function toast(msg, isError = false) {
  const t = $("#toast");
  t.textContent = msg; t.className = isError ? "error" : ""; t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, isError ? 7000 : 2500);
}
function report(e) { console.error(e); toast(e.message || String(e), true); }

// ---- loading ---------------------------------------------------------------------------------
async function loadSummary() {
  const s = await api("api/summary");
  $("#summary").textContent =
    `${s.images} images · ${s.labeled} labelled · ${s.unlabeled} unlabelled · ${s.proposals} proposals` +
    (s.findings ? ` · ${s.findings} findings` : "") + (s.latest_run ? ` · model ${s.latest_run}` : " · no model yet");
  $("#btn-feedback").textContent = s.feedback ? `Feedback (${s.feedback})` : "Feedback";
  if (!user()) $("#annotator").value = s.annotator;
  if (JSON.stringify(s.splits) !== JSON.stringify(state.splits)) {
    state.splits = s.splits;
    const sel = $("#filter-split"), cur = sel.value;
    sel.innerHTML = `<option value="">any</option>` + s.splits.map((x) => `<option>${esc(x)}</option>`).join("");
    sel.value = cur;
  }
}

async function loadClasses() {
  state.classes = await api("api/classes");
  const active = $("#filter-class").value;
  $("#classes").innerHTML = state.classes.map((c, i) =>
    `<li data-name="${esc(c.name)}" class="${c.name === active ? "active" : ""}">` +
    `<span class="key">${i < 9 ? i + 1 : ""}</span><span class="name">${esc(c.name)}</span>` +
    `<span class="count">${c.count}</span></li>`).join("");
  const sel = $("#filter-class");
  sel.innerHTML = `<option value="">any</option>` +
    state.classes.map((c) => `<option>${esc(c.name)}</option>`).join("");
  sel.value = active;
  renderViewerKeys();
}

function query() {
  const q = new URLSearchParams({
    view: $("#view").value, sort: $("#sort").value, offset: state.offset, limit: state.pageSize,
  });
  if ($("#filter-class").value) q.set("label", $("#filter-class").value);
  if ($("#filter-split").value) q.set("split", $("#filter-split").value);
  return q;
}

async function loadImages(append = false) {
  state.mode = "grid";
  const seq = ++state.seq;  // a later request wins: stale responses are dropped
  if (!append) { state.offset = 0; state.cursor = 0; state.selected.clear(); }
  const page = await api("api/images?" + query());
  if (seq !== state.seq) return;
  state.items = append ? state.items.concat(page.items) : page.items;
  state.total = page.total;
  $("#title").textContent = `${state.total} images` + ($("#view").value !== "all" ? ` (${$("#view").value})` : "");
  render();
}

async function loadQueue() {
  toast("choosing the next batch…");
  const seq = ++state.seq;
  const batch = await api("api/queue?n=24");
  const ids = batch.items.map((i) => i.image_id);
  const items = ids.length ? (await api("api/images?ids=" + ids.join(",") + "&limit=500")).items : [];
  if (seq !== state.seq) return;
  state.mode = "queue"; state.cursor = 0; state.selected.clear();
  state.items = items;
  state.total = state.items.length;
  $("#title").textContent = batch.run
    ? `Next batch: ${ids.length} most informative unlabelled images (uncertainty under ${batch.run} + diversity)`
    : `Next batch: ${ids.length} diverse unlabelled images (train a model to rank by uncertainty)`;
  render();
}

async function loadClusters() {
  const seq = ++state.seq;
  const data = await api("api/clusters");
  const clusters = data.clusters.slice(0, 30);
  const ids = clusters.flatMap((c) => c.image_ids);
  const items = ids.length ? (await api("api/images?ids=" + ids.join(",") + "&limit=2000")).items : [];
  if (seq !== state.seq) return;
  state.mode = "clusters"; state.cursor = 0; state.selected.clear();
  state.clusters = clusters;
  state.items = items;
  state.total = state.items.length;
  $("#title").textContent = state.clusters.length
    ? `${data.clusters.length} clusters of unlabelled images — click a cluster's title to select it, ` +
      `deselect the odd ones, press a class key`
    : "No clusters yet: press Auto-label and choose 'cluster' (or run `picsift autolabel --method cluster`)";
  render();
}

// Corrections sent to the served model (`POST /v1/feedback`), awaiting review.
async function loadFeedback() {
  const seq = ++state.seq;
  const data = await api("api/feedback?status=pending");
  if (seq !== state.seq) return;
  state.mode = "feedback"; state.cursor = 0; state.selected.clear();
  state.items = data.items;
  state.total = state.items.length;
  feedbackTitle();
  render();
}

function feedbackTitle() {
  $("#title").textContent = state.items.length
    ? `${state.items.length} pending feedback from the served model — a accept (the image becomes training data ` +
      `with the suggested label), r reject; select several for bulk`
    : "No pending feedback (corrections sent to `picsift serve` via POST /v1/feedback appear here)";
}

function reload() {
  if (state.mode === "feedback") return loadFeedback();
  if (state.mode === "queue") return loadQueue();
  if (state.mode === "clusters") return loadClusters();
  return loadImages();
}

// ---- rendering -------------------------------------------------------------------------------
function card(it, idx) {
  const classes = ["card"];
  if (idx === state.cursor) classes.push("cursor");
  if (state.selected.has(it.id)) classes.push("selected");
  if (it.excluded) classes.push("excluded");
  const lab = it.label ? `<span class="lab">${esc(it.label)}</span>` : `<span class="none">unlabelled</span>`;
  const prop = it.proposal ? ` <span class="prop" title="proposal (${esc(it.proposal.origin)})">→ ${esc(it.proposal.label)}` +
    (it.proposal.confidence != null ? ` ${(it.proposal.confidence * 100).toFixed(0)}%` : "") + `</span>` : "";
  const pred = it.prediction && !it.proposal
    ? `<div class="pred">model: ${esc(it.prediction.label)} ${(it.prediction.confidence * 100).toFixed(0)}%</div>` : "";
  return `<div class="${classes.join(" ")}" data-idx="${idx}" data-id="${it.id}" data-testid="card-${it.id}">` +
    `<img loading="lazy" src="api/images/${it.id}/thumb" alt="${esc(it.name)}">` +
    `<div class="cap" title="${esc(it.name)}">${lab}${prop}${pred}</div></div>`;
}

function feedbackCard(f, idx) {
  const classes = ["card", "fb-card"];
  if (idx === state.cursor) classes.push("cursor");
  if (state.selected.has(f.id)) classes.push("selected");
  const conf = f.confidence != null ? ` ${(f.confidence * 100).toFixed(0)}%` : "";
  return `<div class="${classes.join(" ")}" data-idx="${idx}" data-id="${f.id}" data-testid="fb-${f.id}">` +
    (f.image_path ? `<img loading="lazy" src="api/feedback/${f.id}/image" alt="feedback ${f.id}">`
      : `<div class="noimg">no image</div>`) +
    `<div class="cap"><div class="pred">model: ${esc(f.predicted_label ?? "?")}${conf}</div>` +
    `<div>suggested: <span class="lab">${esc(f.label)}</span></div>` +
    (f.comment ? `<div class="comment" title="${esc(f.comment)}">“${esc(f.comment)}”</div>` : "") +
    `<div class="fb-actions"><button data-fb="accept" data-testid="fb-accept-${f.id}">Accept</button>` +
    `<button data-fb="reject" data-testid="fb-reject-${f.id}">Reject</button></div></div></div>`;
}

function render() {
  const grid = $("#grid");
  const fb = state.mode === "feedback";
  $("#btn-accept").textContent = fb ? "Accept feedback" : "Accept proposals";
  $("#btn-reject").textContent = fb ? "Reject feedback" : "Reject proposals";
  $("#btn-exclude").hidden = $("#btn-include").hidden = fb;
  if (fb) {
    grid.innerHTML = state.items.map(feedbackCard).join("");
  } else if (state.mode === "clusters") {
    const index = new Map(state.items.map((it, i) => [it.id, i]));
    grid.innerHTML = state.clusters.map((c, ci) =>
      `<section class="cluster" data-testid="cluster-${ci}"><h4><button class="sel-cluster" data-cluster="${ci}">` +
      `Cluster ${ci + 1}: select ${c.image_ids.length}</button></h4>` +
      c.image_ids.filter((id) => index.has(id)).map((id) => card(state.items[index.get(id)], index.get(id))).join("") +
      `</section>`).join("");
  } else {
    grid.innerHTML = state.items.map(card).join("") +
      (state.items.length < state.total ? `<div style="width:100%"><button id="load-more">Load more</button></div>` : "");
  }
  renderSelection();
}

function renderSelection() {
  document.querySelectorAll(".card").forEach((el) => {
    const idx = Number(el.dataset.idx);
    el.classList.toggle("cursor", idx === state.cursor);
    el.classList.toggle("selected", state.selected.has(Number(el.dataset.id)));
  });
  $("#selection").textContent = state.selected.size ? `${state.selected.size} selected` : "";
}

function updateItem(id, fields) {
  for (const it of state.items) if (it.id === id) Object.assign(it, fields);
}

function refreshCards(ids) {
  for (const id of ids) {
    const idx = state.items.findIndex((it) => it.id === id);
    const el = document.querySelector(`.card[data-id="${id}"]`);
    if (idx >= 0 && el) el.outerHTML = (state.mode === "feedback" ? feedbackCard : card)(state.items[idx], idx);
  }
  renderSelection();
}

// ---- actions ---------------------------------------------------------------------------------
function targets() {
  if (state.selected.size) return state.items.filter((it) => state.selected.has(it.id));
  const it = state.items[state.cursor];
  return it ? [it] : [];
}

async function applyLabel(items, label) {
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
  if (result.applied.length) state.undo.push(result.applied.map((a) => ({ id: a.image_id, version: a.version })));
  if (result.conflicts.length) {  // show the other writer's label
    const ids = result.conflicts.map((c) => c.image_id);
    const fresh = await api("api/images?ids=" + ids.join(",") + "&limit=500");
    for (const it of fresh.items) updateItem(it.id, it);
  } else {
    toast(label === null ? `label removed from ${result.applied.length}` : `${result.applied.length} → ${label}`);
  }
  refreshCards(items.map((it) => it.id));
  loadClasses().catch(report); loadSummary().catch(report);
  return result;
}

async function undo() {
  const entry = state.undo.pop();
  if (!entry) { toast("nothing to undo"); return; }
  if (entry.exclusion) {  // an exclusion is one catalog action: undo it as a whole
    const r = await post("api/exclusions/undo", { action_id: entry.exclusion });
    for (const id of r.images) updateItem(id, { excluded: false });
    toast(`included again (${r.images.length})`);
    refreshCards(r.images);
    loadSummary().catch(report);
    return;
  }
  const ids = [];
  for (const { id, version } of entry) {
    try {
      const r = await post(`api/images/${id}/undo`, { expected_version: version });
      updateItem(id, { label: r.label, version: r.version });
      ids.push(id);
    } catch (e) { report(e); }
  }
  toast(`undone (${ids.length})`);
  refreshCards(ids);
  if (state.viewer) openViewer(state.cursor);
  loadClasses().catch(report); loadSummary().catch(report);
}

async function reviewFeedback(accept, ids) {
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
  const current = state.items[state.cursor];
  state.items = state.items.filter((f) => !done.has(f.id));
  for (const id of done) state.selected.delete(id);
  state.total = state.items.length;
  const stay = current ? state.items.findIndex((f) => f.id === current.id) : -1;
  state.cursor = Math.max(0, Math.min(stay >= 0 ? stay : state.cursor, state.items.length - 1));
  feedbackTitle(); render();
  loadSummary().catch(report); loadClasses().catch(report);
}

async function excludeImages(items) {
  items = items.filter((it) => !it.excluded);
  if (!items.length) { toast("already excluded"); return; }
  const ids = items.map((it) => it.id);
  const r = await post("api/exclusions", { image_ids: ids, reason: "excluded in the labelling app" });
  for (const id of ids) updateItem(id, { excluded: true });
  state.undo.push({ exclusion: r.action_id });
  toast(`${ids.length} excluded from training (u to undo)`);
  refreshCards(ids);
  loadSummary().catch(report);
}

async function includeImages(items) {
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
  refreshCards(ids);
  loadSummary().catch(report);
}

async function resolveProposals(accept) {
  if (state.mode === "feedback") return reviewFeedback(accept);
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
  if (entry.length) state.undo.push(entry);
  toast(`${accept ? "accepted" : "rejected"} ${done.size}`);
  refreshCards(its.map((it) => it.id));
  loadClasses().catch(report); loadSummary().catch(report);
}

function classByKey(key) {
  const n = Number(key);
  if (n >= 1 && n <= 9 && state.classes[n - 1]) return state.classes[n - 1].name;
  return undefined;
}

// ---- single-image viewer ---------------------------------------------------------------------
function renderViewerKeys() {
  $("#v-keys").innerHTML = state.classes.slice(0, 9).map((c, i) =>
    `<button data-label="${esc(c.name)}"><kbd>${i + 1}</kbd> ${esc(c.name)}</button>`).join("");
}

async function openViewer(idx) {
  const it = state.items[idx];
  if (!it) return;
  state.cursor = idx; state.viewer = true;
  $("#viewer").hidden = false;
  $("#viewer-img").src = `api/images/${it.id}/full`;
  $("#v-pos").textContent = `${idx + 1} / ${state.items.length}`;
  $("#v-label").textContent = it.label ?? "unlabelled";
  renderSelection();
  const d = await api(`api/images/${it.id}`);
  if (state.items[state.cursor]?.id !== it.id) return;  // moved on meanwhile
  updateItem(it.id, { label: d.label, version: d.version, proposal: d.proposal });
  $("#v-label").textContent = d.label ?? "unlabelled";
  $("#v-proposal").innerHTML = d.proposal
    ? `proposed <b>${esc(d.proposal.label)}</b>` +
      (d.proposal.confidence != null ? ` (${(d.proposal.confidence * 100).toFixed(1)}%, ${esc(d.proposal.origin)})` : "") +
      ` <button id="v-accept"><kbd>a</kbd> accept</button> <button id="v-reject"><kbd>r</kbd> reject</button>`
    : (d.prediction ? `model: ${esc(d.prediction.top.map((t) => `${t.label} ${(t.probability * 100).toFixed(1)}%`).join(", "))}` : "");
  const meta = [
    ["file", d.path], ["size", d.width ? `${d.width} × ${d.height} px, ${(d.byte_size / 1024).toFixed(1)} KiB` : ""],
    ["format", [d.format, d.mode].filter(Boolean).join(" ")], ["taken", d.exif_time], ["camera", d.exif_camera],
    ["gps", d.gps ? d.gps.map((x) => x.toFixed(5)).join(", ") : ""], ["split", d.split],
    ["excluded", d.excluded ? "yes" : ""], ["duplicate of", d.duplicate_of], ["error", d.error],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  $("#v-meta").innerHTML = meta.map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join("");
  $("#v-findings").innerHTML = d.findings.map((f) =>
    `<div class="finding"><b>${esc(f.kind)}</b>` + (f.score != null ? ` (score ${Number(f.score).toFixed(3)})` : "") +
    `<br>${esc(f.explanation || "")}` +
    (f.image_ids.length > 1 ? `<br><small>with images ${esc(f.image_ids.filter((x) => x !== d.id).join(", "))}</small>` : "") +
    `</div>`).join("");
  $("#v-history").innerHTML = d.history.slice().reverse().map((h) =>
    `<li>${esc(h.created_at.replace("T", " ").slice(0, 19))} · ${esc(h.label ?? "(none)")} · ${esc(h.status)} · ` +
    `${esc(h.origin)} · ${esc(h.annotator)}</li>`).join("");
}

function closeViewer() {
  state.viewer = false; $("#viewer").hidden = true;
  refreshCards(state.items.map((it) => it.id));
  scrollToCursor();
}

function move(delta) {
  const n = state.items.length;
  if (!n) return;
  state.cursor = Math.max(0, Math.min(n - 1, state.cursor + delta));
  if (state.viewer) openViewer(state.cursor).catch(report);
  else { renderSelection(); scrollToCursor(); }
}

function scrollToCursor() {
  const el = document.querySelector(`.card[data-idx="${state.cursor}"]`);
  if (el) el.scrollIntoView({ block: "nearest" });
}

function columns() {
  const grid = $("#grid"), first = grid.querySelector(".card");
  if (!first) return 1;
  return Math.max(1, Math.floor((grid.clientWidth - 20) / (first.offsetWidth + 8)));
}

// ---- jobs ------------------------------------------------------------------------------------
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
  clearInterval(state.jobTimer);
  state.jobTimer = setInterval(async () => {
    try {
      const job = await api(`api/jobs/${id}`);
      showJob(job);
      if (job.status !== "running") {
        clearInterval(state.jobTimer);
        toast(job.status === "done" ? `${job.kind} finished` : `${job.kind} failed: ${job.error}`, job.status !== "done");
        loadSummary().catch(report); loadClasses().catch(report); reload().catch(report);
      }
    } catch (e) { clearInterval(state.jobTimer); report(e); }
  }, 1000);
}

async function startTrain() {
  const epochs = prompt("Train a model on the labelled images. Epochs:", "5");
  if (!epochs) return;
  const job = await post("api/jobs/train", { epochs: Number(epochs) });
  showJob(job); pollJob(job.id);
}

async function startAutolabel() {
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

// ---- events ----------------------------------------------------------------------------------
function bind() {
  $("#annotator").value = user();
  $("#annotator").addEventListener("change", (e) => { localStorage.setItem("picsift-user", e.target.value.trim()); loadSummary(); });
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
  $("#new-class").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("#new-class-name").value.trim();
    if (!name) return;
    try { await post("api/classes", { name }); $("#new-class-name").value = ""; await loadClasses(); toast(`class ${name} added`); }
    catch (err) { report(err); }
  });
  $("#btn-rename").addEventListener("click", async () => {
    const old = prompt("Rename which class?", $("#filter-class").value || (state.classes[0] || {}).name || "");
    if (!old) return;
    const neu = prompt(`New name for ${old}:`, old);
    if (!neu || neu === old) return;
    try { const r = await post("api/classes/rename", { old, new: neu }); toast(`renamed: ${r.changed} images`);
      $("#filter-class").value = ""; await loadClasses(); await reload(); } catch (err) { report(err); }
  });
  $("#btn-merge").addEventListener("click", async () => {
    const src = prompt("Merge which classes (comma-separated)?", "");
    if (!src) return;
    const target = prompt("…into which class?", "");
    if (!target) return;
    try { const r = await post("api/classes/merge", { sources: src.split(",").map((s) => s.trim()).filter(Boolean), target });
      toast(`merged: ${r.changed} images relabelled`); $("#filter-class").value = ""; await loadClasses(); await reload(); }
    catch (err) { report(err); }
  });
  $("#btn-queue").addEventListener("click", () => loadQueue().catch(report));
  $("#btn-feedback").addEventListener("click", () => loadFeedback().catch(report));
  $("#btn-exclude").addEventListener("click", () => excludeImages(targets()).catch(report));
  $("#btn-include").addEventListener("click", () => includeImages(targets()).catch(report));
  $("#btn-clusters").addEventListener("click", () => loadClusters().catch(report));
  $("#btn-train").addEventListener("click", () => startTrain().catch(report));
  $("#btn-autolabel").addEventListener("click", () => startAutolabel().catch(report));
  $("#btn-select-all").addEventListener("click", () => { state.items.forEach((it) => state.selected.add(it.id)); renderSelection(); });
  $("#btn-clear").addEventListener("click", () => { state.selected.clear(); renderSelection(); });
  $("#btn-accept").addEventListener("click", () => resolveProposals(true).catch(report));
  $("#btn-reject").addEventListener("click", () => resolveProposals(false).catch(report));
  $("#btn-more").addEventListener("click", () => loadImages().catch(report));
  $("#btn-more").hidden = true;
  $("#grid").addEventListener("click", (e) => {
    if (e.target.id === "load-more") { state.offset += state.pageSize; loadImages(true).catch(report); return; }
    const fbBtn = e.target.closest("[data-fb]");
    if (fbBtn) {
      const id = Number(fbBtn.closest(".card").dataset.id);
      reviewFeedback(fbBtn.dataset.fb === "accept", [id]).catch(report); return;
    }
    const clusterBtn = e.target.closest(".sel-cluster");
    if (clusterBtn) {
      for (const id of state.clusters[Number(clusterBtn.dataset.cluster)].image_ids) state.selected.add(id);
      renderSelection(); return;
    }
    const el = e.target.closest(".card");
    if (!el) return;
    const idx = Number(el.dataset.idx), id = Number(el.dataset.id);
    if (e.shiftKey && state.anchor !== null) {
      const [a, b] = [Math.min(state.anchor, idx), Math.max(state.anchor, idx)];
      for (let i = a; i <= b; i++) state.selected.add(state.items[i].id);
    } else if (e.ctrlKey || e.metaKey || state.selected.size || state.mode === "clusters") {
      if (state.selected.has(id)) state.selected.delete(id); else state.selected.add(id);
      state.anchor = idx;
    } else {
      state.anchor = idx;
    }
    state.cursor = idx;
    renderSelection();
  });
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

async function labelInViewer(label) {
  const it = state.items[state.cursor];
  if (!it) return;
  const r = await applyLabel([it], label);
  if (r && r.applied.length && state.cursor < state.items.length - 1) move(1);
  else await openViewer(state.cursor);
}

async function viewerProposal(accept) {
  const saved = new Set(state.selected);
  state.selected.clear();
  try { await resolveProposals(accept); } finally { state.selected = saved; }
  if (accept && state.cursor < state.items.length - 1) move(1); else await openViewer(state.cursor);
}

function onKey(e) {
  if (e.target.matches("input, select, textarea")) return;
  const key = e.key;
  if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "z") { e.preventDefault(); undo().catch(report); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (key === "u") { undo().catch(report); return; }
  if (key === "Escape") {
    if (state.viewer) closeViewer(); else { state.selected.clear(); renderSelection(); }
    return;
  }
  if (key === "ArrowRight") { e.preventDefault(); move(1); return; }
  if (key === "ArrowLeft") { e.preventDefault(); move(-1); return; }
  if (key === "ArrowDown" && !state.viewer) { e.preventDefault(); move(columns()); return; }
  if (key === "ArrowUp" && !state.viewer) { e.preventDefault(); move(-columns()); return; }
  if (state.mode === "feedback" && !state.viewer) {  // feedback rows are not catalog images
    if (key === " ") {
      e.preventDefault();
      const f = state.items[state.cursor];
      if (f) { if (state.selected.has(f.id)) state.selected.delete(f.id); else state.selected.add(f.id); renderSelection(); }
    } else if (key === "a" || key === "r") {
      reviewFeedback(key === "a").catch(report);
    }
    return;
  }
  if (key === "x") {
    const its = state.viewer ? [state.items[state.cursor]].filter(Boolean) : targets();
    excludeImages(its).then(() => { if (state.viewer) openViewer(state.cursor); }).catch(report);
    return;
  }
  if (key === "Enter" && !state.viewer) { openViewer(state.cursor).catch(report); return; }
  if (key === " " && !state.viewer) {
    e.preventDefault();
    const it = state.items[state.cursor];
    if (it) { if (state.selected.has(it.id)) state.selected.delete(it.id); else state.selected.add(it.id); renderSelection(); }
    return;
  }
  if (key === "a" || key === "r") {
    if (state.viewer) viewerProposal(key === "a").catch(report); else resolveProposals(key === "a").catch(report);
    return;
  }
  if (key === "0") {
    if (state.viewer) labelInViewer(null).catch(report); else applyLabel(targets(), null).catch(report);
    return;
  }
  const label = classByKey(key);
  if (label !== undefined) {
    if (state.viewer) { labelInViewer(label).catch(report); return; }
    const its = targets();
    applyLabel(its, label).then(() => {
      if (its.length === 1 && !state.selected.size) move(1);
    }).catch(report);
  }
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
