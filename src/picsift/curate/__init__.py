"""2 CLEAN: duplicates, quality, outliers, label issues and class imbalance -> explained, reversible findings.

Each check is a plain function over arrays and catalog rows (testable without a workspace);
`pipeline.run(cfg)` wires them to the workspace and writes findings.json and clean-report.html.
"""

from picsift.curate.findings import Finding
from picsift.curate.pipeline import ApplyOptions, CleanResult, apply, export_clean, run, undo

__all__ = ["ApplyOptions", "CleanResult", "Finding", "apply", "export_clean", "run", "undo"]
