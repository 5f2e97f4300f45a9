"""Image features: handcrafted (HOG, LBP, colour) and deep embeddings, cached by (extractor, image hash).

from picsift.features import extract, extract_arrays
X = extract(ws, rows, "hog")             # (N, 1764) float32, cached in the workspace
X = extract_arrays(x_uint8, "cnn:fastcnn")
choice = default_embedding()             # efficientnet_lite0 when its weights are installed, else "hand"
"""

from __future__ import annotations

from picsift.features.extract import extract, extract_arrays, extract_available
from picsift.features.extractors import Extractor, get_extractor, list_extractors
from picsift.features.pretrained import EmbeddingChoice, default_embedding, resolve_embedding

__all__ = [
    "EmbeddingChoice",
    "Extractor",
    "default_embedding",
    "extract",
    "extract_arrays",
    "extract_available",
    "get_extractor",
    "list_extractors",
    "resolve_embedding",
]
