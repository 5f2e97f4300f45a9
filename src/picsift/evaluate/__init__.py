"""5 EVALUATE: metrics, calibration and a self-contained HTML report for a trained run."""

from picsift.evaluate.metrics import compute_metrics, most_confident_mistakes, top_k_accuracy
from picsift.evaluate.pipeline import EvalResult, run
from picsift.evaluate.report import Mistake, ReportSection, render_report, write_report

__all__ = [
    "EvalResult",
    "Mistake",
    "ReportSection",
    "compute_metrics",
    "most_confident_mistakes",
    "render_report",
    "run",
    "top_k_accuracy",
    "write_report",
]
