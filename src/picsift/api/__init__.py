"""The Python API: one function per user operation; each `picsift` command parses its flags, makes one call here
and prints the result.

Every function takes the workspace as a keyword (`workspace=`; None: ./picsift-workspace or
$PICSIFT_WORKSPACE), returns a typed result (a dataclass; its `to_dict()`, where it has one, is the CLI's
`--json` object) and raises picsift's typed errors (`picsift.errors`), which the CLI prints as one line with
exit code 2.

Importing this package is cheap: the stages (and torch, scikit-learn, FastAPI with them) load when a function
runs. One module per stage: ingest, curate, label, train, evaluate, improve, deploy.
"""

from __future__ import annotations

from picsift.api.curate import (
    CleanApplyResult,
    CleanExport,
    CleanUndoResult,
    clean,
    clean_apply,
    clean_undo,
    export_clean,
)
from picsift.api.deploy import (
    ExportResult,
    FeedbackExport,
    ModelServer,
    export_bundle,
    feedback_accept,
    feedback_export,
    feedback_list,
    feedback_reject,
    model_server,
)
from picsift.api.evaluate import PredictResult, evaluate_run, predict, predict_to_folder
from picsift.api.improve import (
    CalibrationResult,
    DriftResult,
    EnsembleResult,
    TuneResult,
    calibrate,
    check_drift,
    ensemble,
    tune,
)
from picsift.api.ingest import (
    WorkspaceInit,
    WorkspaceStatus,
    import_images,
    init_workspace,
    set_storage_options,
    status,
)
from picsift.api.label import LabelExport, LabelServer, autolabel, cluster, export_labels, import_labels, label_server
from picsift.api.train import (
    ExtractorInfo,
    FeaturesResult,
    ModelInfo,
    compare_models,
    describe_models,
    extract_features,
    is_relayed_error,
    list_extractors,
    list_runs,
    process_rank,
    train_model,
)

__all__ = [
    "CalibrationResult",
    "CleanApplyResult",
    "CleanExport",
    "CleanUndoResult",
    "DriftResult",
    "EnsembleResult",
    "ExportResult",
    "ExtractorInfo",
    "FeaturesResult",
    "FeedbackExport",
    "LabelExport",
    "LabelServer",
    "ModelInfo",
    "ModelServer",
    "PredictResult",
    "TuneResult",
    "WorkspaceInit",
    "WorkspaceStatus",
    "autolabel",
    "calibrate",
    "check_drift",
    "clean",
    "clean_apply",
    "clean_undo",
    "cluster",
    "compare_models",
    "describe_models",
    "ensemble",
    "evaluate_run",
    "export_bundle",
    "export_clean",
    "export_labels",
    "extract_features",
    "feedback_accept",
    "feedback_export",
    "feedback_list",
    "feedback_reject",
    "import_images",
    "import_labels",
    "init_workspace",
    "set_storage_options",
    "is_relayed_error",
    "label_server",
    "list_extractors",
    "list_runs",
    "model_server",
    "predict",
    "predict_to_folder",
    "process_rank",
    "status",
    "train_model",
    "tune",
]
