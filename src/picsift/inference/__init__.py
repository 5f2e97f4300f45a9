"""INFERENCE: a fitted model applied to images, the same way for every caller.

- `forward`       picsift.models.forward: the one torch forward pass (crop/normalise from the DataConfig)
- `runtime`       torch, scikit-learn and ONNX runtimes: uint8 images -> scores and features
- `ensemble`      an ensemble's members combined
- `tta`           test-time views on uint8 images and named view sets
- `postprocess`   class scales, then temperature
- `unknown`       applying a fitted unknown rejector
- `spec`          InferenceSpec: the settings picsift.improve fits, stored with the run (inference.json)
- `predictor`     Predictor: runtime + spec; never fits, never writes
"""

from picsift.inference.artifacts import load_artifact, runtime_for
from picsift.inference.predictor import Prediction, Predictor, predict_files, top_classes
from picsift.inference.spec import InferenceSpec, UnknownRule, read_spec, write_spec
from picsift.inference.tta import VIEW_SETS, ViewSet, apply_view, view_set

__all__ = [
    "VIEW_SETS",
    "InferenceSpec",
    "Prediction",
    "Predictor",
    "UnknownRule",
    "ViewSet",
    "apply_view",
    "load_artifact",
    "predict_files",
    "read_spec",
    "runtime_for",
    "top_classes",
    "view_set",
    "write_spec",
]
