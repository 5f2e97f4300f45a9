// The classes panel: names with counts (keys 1-9), the class filter, and class edits.
import { api, post } from "./api.js";
import { setClasses, store } from "./state.js";
import { $, esc, toast } from "./ui.js";
import { renderViewerKeys } from "./viewer.js";

export async function loadClasses() {
  setClasses(await api("api/classes"));
  const active = $("#filter-class").value;
  $("#classes").innerHTML = store.classes.map((c, i) =>
    `<li data-name="${esc(c.name)}" class="${c.name === active ? "active" : ""}">` +
    `<span class="key">${i < 9 ? i + 1 : ""}</span><span class="name">${esc(c.name)}</span>` +
    `<span class="count">${c.count}</span></li>`).join("");
  const sel = $("#filter-class");
  sel.innerHTML = `<option value="">any</option>` +
    store.classes.map((c) => `<option>${esc(c.name)}</option>`).join("");
  sel.value = active;
  renderViewerKeys();
}

// Keys 1-9 -> the class at that place in the list (undefined for any other key).
export function classByKey(key) {
  const n = Number(key);
  if (n >= 1 && n <= 9 && store.classes[n - 1]) return store.classes[n - 1].name;
  return undefined;
}

export async function addClass() {
  const name = $("#new-class-name").value.trim();
  if (!name) return;
  await post("api/classes", { name }); $("#new-class-name").value = ""; await loadClasses(); toast(`class ${name} added`);
}

// Rename or merge by asking in prompts; true when something changed (the caller reloads the view).
export async function renameClass() {
  const old = prompt("Rename which class?", $("#filter-class").value || (store.classes[0] || {}).name || "");
  if (!old) return false;
  const neu = prompt(`New name for ${old}:`, old);
  if (!neu || neu === old) return false;
  const r = await post("api/classes/rename", { old, new: neu }); toast(`renamed: ${r.changed} images`);
  $("#filter-class").value = ""; await loadClasses();
  return true;
}

export async function mergeClasses() {
  const src = prompt("Merge which classes (comma-separated)?", "");
  if (!src) return false;
  const target = prompt("…into which class?", "");
  if (!target) return false;
  const r = await post("api/classes/merge", { sources: src.split(",").map((s) => s.trim()).filter(Boolean), target });
  toast(`merged: ${r.changed} images relabelled`); $("#filter-class").value = ""; await loadClasses();
  return true;
}
