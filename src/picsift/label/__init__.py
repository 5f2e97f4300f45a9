"""3 LABEL: labelling logic (listing, edits and their conflict rules, findings, links), automated labelling and
the active-learning queue. The browser app over it is `picsift.label_app` (`create_app(LabelSettings(...))`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "autolabel",
    "export_labels",
    "import_labels",
    "next_batch",
    "select_batch",
    "uncertainty",
]

if TYPE_CHECKING:
    from picsift.label.autolabel import autolabel
    from picsift.label.labels_io import export_labels, import_labels
    from picsift.label.queue import next_batch, select_batch, uncertainty

_WHERE = {
    "autolabel": "autolabel",
    "export_labels": "labels_io",
    "import_labels": "labels_io",
    "next_batch": "queue",
    "select_batch": "queue",
    "uncertainty": "queue",
}


def __getattr__(name: str) -> Any:
    # Lazy: `import picsift.label` must not pull in FastAPI for users of the queue or autolabel alone.
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"picsift.label.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'picsift.label' has no attribute {name!r}")
