// The grid: image cards, feedback cards and clusters, drawn from the store.
import { store } from "./state.js";
import { $, esc } from "./ui.js";

// The card's findings: one badge per kind; a suspected label error the label still carries says so plainly.
function findingBadges(it) {
  const seen = new Set();
  return (it.findings || []).filter((f) => !seen.has(f.kind) && seen.add(f.kind)).map((f) => {
    const open = f.given_label != null && f.given_label === it.label && f.suggested_label != null;
    return open
      ? `<span class="badge issue" title="${esc(f.kind)} (score ${f.score.toFixed(3)}): labelled ${esc(f.given_label)}, ` +
        `looks like ${esc(f.suggested_label)}">label? → ${esc(f.suggested_label)}</span>`
      : `<span class="badge finding" title="${esc(f.kind)} (score ${f.score.toFixed(3)})">${esc(f.kind)}</span>`;
  }).join("");
}

export function card(it, idx) {
  const classes = ["card"];
  if (idx === store.cursor) classes.push("cursor");
  if (store.selected.has(it.id)) classes.push("selected");
  if (it.excluded) classes.push("excluded");
  if (it.disagrees) classes.push("disagree");
  const lab = it.label ? `<span class="lab">${esc(it.label)}</span>` : `<span class="none">unlabelled</span>`;
  const prop = it.proposal ? ` <span class="prop" title="proposal (${esc(it.proposal.origin)})">→ ${esc(it.proposal.label)}` +
    (it.proposal.confidence != null ? ` ${(it.proposal.confidence * 100).toFixed(0)}%` : "") + `</span>` : "";
  const pred = it.prediction && !it.proposal
    ? `<div class="pred">model: ${esc(it.prediction.label)} ${(it.prediction.confidence * 100).toFixed(0)}%</div>` : "";
  const mark = it.disagrees
    ? `<span class="disagree-mark" data-testid="disagree-${it.id}" title="labelled ${esc(it.label)}, the model says ` +
      `${esc(it.prediction.label)} (${(it.prediction.confidence * 100).toFixed(0)}%)">≠ model</span>` : "";
  const badges = findingBadges(it);
  return `<div class="${classes.join(" ")}" data-idx="${idx}" data-id="${it.id}" data-testid="card-${it.id}">` +
    `<img loading="lazy" src="api/images/${it.id}/thumb" alt="${esc(it.name)}">${mark}` +
    `<div class="cap" title="${esc(it.name)}">${lab}${prop}${pred}</div>` +
    (badges ? `<div class="badges">${badges}</div>` : "") + `</div>`;
}

// What accepting feedback would do, as badges: a new class, agreement with the model, an image relabelled.
export function feedbackPlan(f) {
  const p = f.plan || {};
  const out = [];
  if (p.new_class) out.push(`<span class="badge new" title="no image has this label yet">new class</span>`);
  if (p.agrees_with_model === true) out.push(`<span class="badge agree">agrees with the model</span>`);
  if (p.agrees_with_model === false) out.push(`<span class="badge differ">model said ${esc(f.predicted_label)}</span>`);
  if (p.catalog_image) {
    const c = p.catalog_image;
    out.push(`<span class="badge" title="the same image is catalogued: accepting relabels it">image ${c.id} · ` +
      `${esc(c.split || "no split")} · ${c.label == null ? "unlabelled" : esc(c.label)}</span>`);
  }
  return out.join(" ");
}

// A correction sent to the served model (not a catalog image): its ids are feedback ids.
export function feedbackCard(f, idx) {
  const classes = ["card", "fb-card"];
  if (idx === store.cursor) classes.push("cursor");
  if (store.selected.has(f.id)) classes.push("selected");
  const conf = f.confidence != null ? ` ${(f.confidence * 100).toFixed(0)}%` : "";
  return `<div class="${classes.join(" ")}" data-idx="${idx}" data-id="${f.id}" data-testid="fb-${f.id}">` +
    (f.image_path ? `<img loading="lazy" src="api/feedback/${f.id}/image" alt="feedback ${f.id}">`
      : `<div class="noimg">no image</div>`) +
    `<div class="cap"><div class="pred">model: ${esc(f.predicted_label ?? "?")}${conf}</div>` +
    `<div>suggested: <span class="lab">${esc(f.label)}</span></div>` +
    `<div class="badges">${feedbackPlan(f)}</div>` +
    (f.comment ? `<div class="comment" title="${esc(f.comment)}">“${esc(f.comment)}”</div>` : "") +
    `<div class="fb-actions"><button data-fb="accept" data-testid="fb-accept-${f.id}">Accept</button>` +
    `<button data-fb="reject" data-testid="fb-reject-${f.id}">Reject</button></div></div></div>`;
}

function clusterSection(c, ci, index) {
  const shown = c.image_ids.filter((id) => index.has(id));
  const unlabeled = c.unlabeled_ids.filter((id) => index.has(id)).length;
  const labels = Object.entries(c.labels || {}).map(([k, n]) => `${esc(k)} ${n}`).join(", ");
  return `<section class="cluster" data-testid="cluster-${ci}"><h4>` +
    `<button class="sel-cluster" data-cluster="${ci}"${unlabeled ? "" : " disabled"}>` +
    `Cluster ${ci + 1}: select ${unlabeled} unlabelled</button>` +
    `<span class="muted">${c.size} images${labels ? ` · labelled: ${labels}` : ""}` +
    (shown.length < c.size ? ` · showing ${shown.length}` : "") + `</span></h4>` +
    shown.map((id) => card(store.items[index.get(id)], index.get(id))).join("") + `</section>`;
}

export function render() {
  const grid = $("#grid");
  const fb = store.mode === "feedback";
  $("#btn-accept").textContent = fb ? "Accept feedback" : "Accept proposals";
  $("#btn-reject").textContent = fb ? "Reject feedback" : "Reject proposals";
  $("#btn-exclude").hidden = $("#btn-include").hidden = fb;
  if (fb) {
    grid.innerHTML = store.items.map(feedbackCard).join("");
  } else if (store.mode === "clusters") {
    const index = new Map(store.items.map((it, i) => [it.id, i]));
    grid.innerHTML = store.clusters.map((c, ci) => clusterSection(c, ci, index)).join("");
  } else {
    grid.innerHTML = store.items.map(card).join("") +
      (store.mode === "grid" && store.items.length < store.total
        ? `<div style="width:100%"><button id="load-more">Load more</button></div>` : "");
  }
  renderSelection();
}

export function renderSelection() {
  document.querySelectorAll(".card").forEach((el) => {
    const idx = Number(el.dataset.idx);
    el.classList.toggle("cursor", idx === store.cursor);
    el.classList.toggle("selected", store.selected.has(Number(el.dataset.id)));
  });
  $("#selection").textContent = store.selected.size ? `${store.selected.size} selected` : "";
}

// The loading indicator, in place of the cards (while a page and its predictions are computed).
export function showLoading(text) {
  $("#grid").innerHTML = `<div class="loading" data-testid="loading">${esc(text)}</div>`;
}

export function refreshCards(ids) {
  for (const id of ids) {
    const idx = store.items.findIndex((it) => it.id === id);
    const el = document.querySelector(`.card[data-id="${id}"]`);
    if (idx >= 0 && el) el.outerHTML = (store.mode === "feedback" ? feedbackCard : card)(store.items[idx], idx);
  }
  renderSelection();
}

export function scrollToCursor() {
  const el = document.querySelector(`.card[data-idx="${store.cursor}"]`);
  if (el) el.scrollIntoView({ block: "nearest" });
}

// Cards per row, for moving the cursor up and down.
export function columns() {
  const grid = $("#grid"), first = grid.querySelector(".card");
  if (!first) return 1;
  return Math.max(1, Math.floor((grid.clientWidth - 20) / (first.offsetWidth + 8)));
}
