// Keyboard shortcuts (listed under "Keyboard" in the side panel).
import { applyLabel, excludeImages, labelInViewer, resolveProposals, undo, viewerProposal } from "./actions.js";
import { classByKey } from "./classes.js";
import { reviewFeedback } from "./feedback.js";
import { columns, renderSelection } from "./grid.js";
import { clearSelection, store, targets, toggleSelected } from "./state.js";
import { report } from "./ui.js";
import { closeViewer, move, openViewer } from "./viewer.js";

function toggleCursorItem() {
  const it = store.items[store.cursor];
  if (it) { toggleSelected(it.id); renderSelection(); }
}

export function onKey(e) {
  if (e.target.matches("input, select, textarea")) return;
  const key = e.key;
  if ((e.ctrlKey || e.metaKey) && key.toLowerCase() === "z") { e.preventDefault(); undo().catch(report); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (key === "u") { undo().catch(report); return; }
  if (key === "Escape") {
    if (store.viewer) closeViewer(); else { clearSelection(); renderSelection(); }
    return;
  }
  if (key === "ArrowRight") { e.preventDefault(); move(1); return; }
  if (key === "ArrowLeft") { e.preventDefault(); move(-1); return; }
  if (key === "ArrowDown" && !store.viewer) { e.preventDefault(); move(columns()); return; }
  if (key === "ArrowUp" && !store.viewer) { e.preventDefault(); move(-columns()); return; }
  if (store.mode === "feedback" && !store.viewer) {  // feedback rows are not catalog images
    if (key === " ") {
      e.preventDefault();
      toggleCursorItem();
    } else if (key === "a" || key === "r") {
      reviewFeedback(key === "a").catch(report);
    }
    return;
  }
  if (key === "x") {
    const its = store.viewer ? [store.items[store.cursor]].filter(Boolean) : targets();
    excludeImages(its).then(() => { if (store.viewer) openViewer(store.cursor); }).catch(report);
    return;
  }
  if (key === "Enter" && !store.viewer) { openViewer(store.cursor).catch(report); return; }
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
      if (its.length === 1 && !store.selected.size) move(1);
    }).catch(report);
  }
}
