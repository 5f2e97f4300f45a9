"""Every stage embeds images with the pretrained backbone when its weights are installed, records that choice,
and falls back to hand features with the reason when none are; label issues on real photos with planted flips."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.cluster import run as run_cluster
from picsift.config import CleanConfig
from picsift.curate import run as run_clean
from picsift.features import default_embedding, get_extractor
from picsift.features.pretrained import HAND_REASON
from picsift.label.autolabel import autolabel
from picsift.label.queue import next_batch
from picsift.models.pretrained import KNOWN
from support.images import DATASETS, require
from support.label import make_workspace

LITE0 = KNOWN["efficientnet_lite0"]
PRETRAINED_TEXT = f"embedding: efficientnet_lite0 (ImageNet, package {LITE0.package})"
HAND_TEXT = f"hand features: {HAND_REASON}"


def require_package() -> None:
    require(importlib.util.find_spec(LITE0.module) is not None, f"{LITE0.package} is not installed")


def test_default_embedding_names_the_installed_backbone() -> None:
    require_package()
    choice = default_embedding()
    assert (choice.extractor, choice.pretrained, choice.text) == ("efficientnet_lite0", True, PRETRAINED_TEXT)
    ext = get_extractor("efficientnet_lite0")
    assert (ext.kind, ext.size) == ("pretrained", 224) and ext.key.startswith("pretrained:efficientnet_lite0/224px/")
    assert get_extractor("efficientnet_lite0@96").key.startswith("pretrained:efficientnet_lite0/96px/")


@pytest.mark.usefixtures("no_weights_anywhere")
def test_without_weights_the_default_is_hand_features_and_naming_one_says_how_to_install() -> None:
    from picsift.errors import WeightsNotAvailableError

    assert default_embedding().to_dict() == {"extractor": "hand", "pretrained": False, "text": HAND_TEXT}
    assert default_embedding(fallback="hog").extractor == "hog"
    with pytest.raises(WeightsNotAvailableError, match="'efficientnet_lite0'.*pip install 'picsift\\[pretrained\\]'"):
        get_extractor("efficientnet_lite0")


def test_features_cli_pretrained_extractor_is_cached_per_model_size_and_image(tmp_path: Path) -> None:
    require_package()
    ws = make_workspace(tmp_path, per_class=4)
    cli, runner = build_app(), CliRunner()

    def features(name: str) -> dict:
        r = runner.invoke(cli, ["features", "--workspace", str(ws.root), "--extractor", name, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    first, again, small = (
        features("efficientnet_lite0"),
        features("efficientnet_lite0"),
        features("efficientnet_lite0@64"),
    )
    assert (first["images"], first["dim"], first["computed"], first["cached"]) == (12, 1280, 12, 0)
    assert (again["computed"], again["cached"]) == (0, 12) and again["cache_file"] == first["cache_file"]
    assert (small["computed"], small["cached"]) == (12, 0) and small["cache_file"] != first["cache_file"]
    r = runner.invoke(cli, ["features", "--workspace", str(ws.root), "--extractor", "efficientnet_lite0@8"])
    assert r.exit_code == 2 and "whole number of pixels >= 32" in r.output
    ws.close()


def stage_choices(root: Path) -> dict[str, tuple[str, str]]:
    """(extractor, recorded text) of clean, cluster, autolabel --method cluster and the queue on one workspace."""
    ws = make_workspace(root, per_class=8)
    clean = run_clean(CleanConfig(workspace=ws.root, checks=("duplicates", "outliers", "labels")))
    doc = json.loads(clean.findings_path.read_text())
    assert doc["embedding"] == clean.embedding
    clusters = run_cluster(ws, k=3).summary
    grouped = autolabel(ws, "cluster", n_clusters=3)
    batch = next_batch(ws, 4)
    saved = json.loads((ws.root / "clusters.json").read_text())
    assert saved["embedding"] == grouped.embedding_text
    ws.close()
    return {
        "clean": (clean.embedding["extractor"], clean.embedding["text"]),
        "clean labels": (clean.label_model["model"], clean.label_model["embedding"]),
        "cluster": (clusters["features"], clusters["embedding"]),
        "autolabel": (str(grouped.embeddings), str(grouped.embedding_text)),
        "queue": (batch.embeddings, batch.embedding_text),
    }


def test_each_stage_uses_and_records_the_pretrained_embedding(tmp_path: Path) -> None:
    require_package()
    lite0 = ("efficientnet_lite0", PRETRAINED_TEXT)
    assert stage_choices(tmp_path) == {
        "clean": lite0,
        "clean labels": ("logistic", PRETRAINED_TEXT),
        "cluster": lite0,
        "autolabel": lite0,
        "queue": lite0,
    }


@pytest.mark.usefixtures("no_weights_anywhere")
def test_each_stage_falls_back_to_hand_features_and_says_why(tmp_path: Path) -> None:
    assert stage_choices(tmp_path) == {
        "clean": ("hand", HAND_TEXT),
        "clean labels": ("ridge", HAND_TEXT),
        "cluster": ("hog", HAND_TEXT),
        "autolabel": ("hog", HAND_TEXT),
        "queue": ("hog", HAND_TEXT),
    }


def test_label_issues_on_hymenoptera_photos_find_planted_flips(tmp_path: Path) -> None:
    """40 ants and 40 bees, 2 of each relabelled as the other class: the logistic head on the pretrained
    embedding flags at least 3 of the 4 and few correct labels."""
    require_package()
    source = DATASETS / "hymenoptera" / "train"
    require(source.is_dir(), f"hymenoptera not found at {DATASETS}")
    from picsift import ingest
    from picsift.config import ImportConfig

    rng = np.random.default_rng(0)
    flipped: set[str] = set()
    for cls, other in (("ants", "bees"), ("bees", "ants")):
        files = sorted((source / cls).iterdir())[:40]
        flips = set(rng.choice(40, 2, replace=False).tolist())
        for i, f in enumerate(files):
            dest = tmp_path / "photos" / (other if i in flips else cls) / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
            if i in flips:
                flipped.add(f.name)
    ingest.run(ImportConfig(source=str(tmp_path / "photos"), workspace=tmp_path / "ws"))
    result = run_clean(CleanConfig(workspace=tmp_path / "ws", checks=("labels",)))
    assert result.label_model["model"] == "logistic" and result.label_model["images"] == 80
    from picsift.store import Workspace

    paths = {r.id: Path(r.path).name for r in Workspace.open(tmp_path / "ws").catalog.images()}
    flagged = {paths[f.image_ids[0]] for f in result.findings if f.kind == "label_issue"}
    assert len(flagged & flipped) >= 3, (flagged, flipped)
    assert len(flagged - flipped) <= 2, (flagged, flipped)
    # The model agrees with the labels (not weak), so "auto" adds no second embedding; a named one is added.
    assert result.label_model["cv_agreement"] >= 0.8 and "added_extractors" not in result.label_model
    named = run_clean(CleanConfig(workspace=tmp_path / "ws", checks=("labels",), label_extractors="hog"))
    lm = named.label_model
    assert lm["added_extractors"] == ["hog"] and lm["first_cv_agreement"] == result.label_model["cv_agreement"]
    assert lm["images"] == 80 and 0.5 <= lm["cv_agreement"] <= 1.0


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny trained run (3 digit classes) and a folder of 12 of its own images."""
    from picsift import train
    from support.improve import make_workspace as make_run_workspace
    from support.improve import quick_config

    root = tmp_path_factory.mktemp("run")
    ws = make_run_workspace(root, classes=3, per_class=20)
    return train.run(quick_config(ws, epochs=2)).run_dir, root / "images" / "0"


def test_drift_records_its_features(
    digits_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The drift domain classifier reads the pretrained embedding when installed, and says so; without weights
    it reads the model's own features and says why. (Unknown rejection keeps the model's own features: a bundle
    must apply it with nothing but itself.)"""
    require_package()
    from picsift.improve.drift import check_drift

    run_dir, folder = digits_run
    assert check_drift(run_dir, folder)["embedding"]["features"] == PRETRAINED_TEXT

    import importlib.metadata

    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert check_drift(run_dir, folder)["embedding"]["features"] == f"model features: {HAND_REASON}"
