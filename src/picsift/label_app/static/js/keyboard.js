// Keyboard shortcuts (listed under "Keyboard" in the side panel).
import { applyLabel, excludeImages, labelInViewer, resolveProposals, undo, viewerProposal } from "./actions.js";
import { classByKey } from "./classes.js";
import { reviewFeedback } from "./feedback.js";
import { columns, renderSelection } from "./grid.js";
import { clearSelection, store, targets, toggleSelected } from "./state.js";
import { closeDialog, report } from "./ui.js";
import { closeViewer, move, openViewer } from "./viewer.js";
import { loadGrid } from "./views.js";

function toggleCursorItem() {
  const it = store.items[store.cursor];
  if (it) { toggleSelected(it.id); renderSelection(); }
}

// Esc goes back one step: the viewer, then the selection, then from any other view to the catalog grid.
function back() {
  if (store.viewer) { closeViewer(); return; }
  if (store.selected.size) { clearSelection(); renderSelection(); return; }
  if (store.mode !== "grid") loadGrid().catch(report);
}

// Keys of the Feedback view (its items are feedback, not catalog images).
function feedbackKey(e, key) {
  const it = store.items[store.cursor];
  if (key === "Enter" && !store.viewer) { openViewer(store.cursor).catch(report); return; }
  if (key === " " && !store.viewer) { e.preventDefault(); toggleCursorItem(); return; }
  if (key === "a" || key === "r") {
    reviewFeedback(key === "a", store.viewer && it ? [it.id] : undefined).catch(report);
  }
}

export function onKey(e) {
  const key = e.key;
  if (store.dialog) {  // the confirmation takes every key: Enter accepts, Esc cancels
    if (key === "Enter" || key === "Escape") { e.preventDefault(); closeDialog(key === "Enter"); }
    return;
  }
  if (e.target.matches("input, select, textarea")) return;
  if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "z") { e.preventDefault(); undo().catch(report); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (key === "u") { undo().catch(report); return; }
  if (key === "Escape") { back(); return; }
  if (key === "ArrowRight") { e.preventDefault(); move(1).catch(report); return; }
  if (key === "ArrowLeft") { e.preventDefault(); move(-1).catch(report); return; }
  if (key === "ArrowDown" && !store.viewer) { e.preventDefault(); move(columns()).catch(report); return; }
  if (key === "ArrowUp" && !store.viewer) { e.preventDefault(); move(-columns()).catch(report); return; }
  if (store.mode === "feedback") { feedbackKey(e, key); return; }
  if (key === "x") {
    const its = store.viewer ? [store.items[store.cursor]].filter(Boolean) : targets();
    excludeImages(its).catch(report);
    return;
  }
  if (key === "Enter" && !store.viewer) { e.preventDefault(); openViewer(store.cursor).catch(report); return; }
  if (key === " " && !store.viewer) {
    e.preventDefault();
    toggleCursorItem();
    return;
  }
  if (key === "a" || key === "r") {
    if (store.viewer) viewerProposal(key === "a").catch(report); else resolveProposals(key === "a").catch(report);
    return;
  }
  if (key === "0") {
    if (store.viewer) labelInViewer(null).catch(report); else applyLabel(targets(), null).catch(report);
    return;
  }
  const label = classByKey(key);
  if (label !== undefined) {
    if (store.viewer) { labelInViewer(label).catch(report); return; }
    const its = targets();
    applyLabel(its, label).then(() => {
      if (its.length === 1 && !store.selected.size) return move(1);
    }).catch(report);
  }
}
