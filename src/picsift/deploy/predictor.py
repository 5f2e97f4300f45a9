"""Predicting files with a run: the Predictor lives in picsift.inference, input gathering in picsift.data.inputs;
these names stay importable from here."""

from picsift.data.inputs import InputFiles, collect_inputs, expand_inputs
from picsift.inference.predictor import PREDICT_CHUNK, Prediction, Predictor, predict_files, top_classes

__all__ = [
    "PREDICT_CHUNK",
    "InputFiles",
    "Prediction",
    "Predictor",
    "collect_inputs",
    "expand_inputs",
    "predict_files",
    "top_classes",
]
