// DOM helpers shared by every module: element lookup, HTML escaping, the toast, the confirmation dialog, focus.
import { setDialog, store } from "./state.js";

export const $ = (sel) => document.querySelector(sel);

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

let toastTimer = null;

export function toast(msg, isError = false) {
  const t = $("#toast");
  t.textContent = msg; t.className = isError ? "error" : ""; t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 7000 : 2500);
}

export function report(e) { console.error(e); toast(e.message || String(e), true); }

// Give the keyboard back to the grid (after a select, button or text box was used).
export function focusGrid() {
  const active = document.activeElement;
  if (active && active !== document.body && active.blur) active.blur();
  $("#grid").focus({ preventScroll: true });
}

// An in-page confirmation (Enter accepts, Esc cancels): resolves true or false.
export function confirmDialog(html, okText = "Accept") {
  if (store.dialog) store.dialog.resolve(false);
  $("#dialog-text").innerHTML = html;
  $("#dialog-ok").innerHTML = `<kbd>Enter</kbd> ${esc(okText)}`;
  $("#dialog").hidden = false;
  return new Promise((resolve) => {
    setDialog({
      resolve: (ok) => { setDialog(null); $("#dialog").hidden = true; focusGrid(); resolve(ok); },
    });
  });
}

export function closeDialog(ok) { if (store.dialog) store.dialog.resolve(ok); }
