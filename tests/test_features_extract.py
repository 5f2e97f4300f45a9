"""Feature extraction: shapes, the (extractor, sha256) cache, in-memory use and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from picsift.errors import ConfigError
from picsift.features import extract, extract_arrays, get_extractor
from picsift.features.store import FeatureStore
from support.features import make_workspace


@pytest.mark.parametrize(("name", "dim"), [("hog", 1764), ("lbp", 160), ("color-hist", 512)])
def test_handcrafted_shapes_and_cache_reuse(tmp_path: Path, name: str, dim: int) -> None:
    ws = make_workspace(tmp_path, per_class=5)
    rows = ws.catalog.images()
    feats = extract(ws, rows, name)
    assert feats.shape == (len(rows), dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and feats.std() > 0
    assert FeatureStore(ws.cache_dir, get_extractor(name).key).count() == len(rows)
    # The second call must be served from the cache: the image files are gone by then.
    for r in rows:
        Path(r.path).unlink()
    again = extract(ws, rows[::-1], name)
    np.testing.assert_array_equal(again, feats[::-1])


def test_extract_arrays_matches_cached_extract(tmp_path: Path) -> None:
    from picsift.data.cache import DecodedCache

    ws = make_workspace(tmp_path, per_class=4)
    rows = ws.catalog.images()
    x = DecodedCache(ws.cache_dir, 64).get_many([(r.sha256, r.path) for r in rows])
    np.testing.assert_allclose(extract_arrays(x, "hog"), extract(ws, rows, "hog"), rtol=1e-6)
    # Another input size is resized to the extractor's size, so D does not change.
    small = DecodedCache(ws.cache_dir, 32).get_many([(r.sha256, r.path) for r in rows])
    assert extract_arrays(small, "hog").shape == (len(rows), 1764)


def test_hog_separates_digit_classes(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=10)
    rows = ws.catalog.images()
    feats = extract(ws, rows, "hog")
    labels = np.array([r.label for r in rows])
    d = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = labels[d.argmin(1)]
    assert (nearest == labels).mean() > 0.9


def test_cnn_embeddings_are_deterministic(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    a = extract_arrays(x, "cnn:fastcnn")
    b = extract_arrays(x, "cnn:fastcnn")
    assert a.ndim == 2 and a.shape[0] == 6 and a.shape[1] >= 16
    np.testing.assert_array_equal(a, b)  # seeded random init: the same function every time
    assert get_extractor("cnn:fastcnn").key != get_extractor("cnn:fastcnn+pretrained").key


def test_cnn_with_local_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from picsift.models import create_model

    model = create_model("fastcnn", num_classes=2)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    feats = extract_arrays(x, f"cnn:fastcnn@{path}")
    assert feats.shape[0] == 3
    assert get_extractor(f"cnn:fastcnn@{path}").key != get_extractor("cnn:fastcnn").key


def test_errors_are_actionable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean hog"):
        get_extractor("hogg")
    with pytest.raises(ConfigError, match="did you mean"):
        get_extractor("cnn:resnet81")
    with pytest.raises(ConfigError, match="does not exist"):
        get_extractor(f"cnn:fastcnn@{tmp_path / 'missing.safetensors'}")
    with pytest.raises(ConfigError, match="expects uint8"):
        extract_arrays(np.zeros((2, 8, 8), dtype=np.float32), "hog")
    ws = make_workspace(tmp_path, per_class=2, classes=2)
    with pytest.raises(ConfigError, match="run:"):
        extract(ws, ws.catalog.images(), "run:nope")
