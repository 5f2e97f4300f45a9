"""The faults fuzzing found, each as the input that showed it and the typed error (naming where) it now gives."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from picsift.cli.train_cmd import parse_params
from picsift.config import CleanConfig, EvalConfig, TrainConfig, load_yaml_overrides
from picsift.errors import ConfigError, DatasetError
from picsift.ingest.archives import extract, safe_member_path
from picsift.ingest.sources import discover_url_list
from picsift.ingest.urls import is_url
from picsift.label.label_files import image_reference_path, read_label_file
from picsift.train.fast.recipe import FastRecipe
from picsift.train.transfer.recipe import TransferRecipe


def test_an_unclosed_ipv6_host_is_not_a_url(tmp_path: Path) -> None:
    assert is_url("http://[::1") is False  # urlsplit raised ValueError
    urls = tmp_path / "urls.txt"
    urls.write_text("http://[::1/a.png\n")
    with pytest.raises(DatasetError, match=r"urls.txt line 1: not an http\(s\) URL"):
        discover_url_list(urls)
    assert image_reference_path("http://[::1/a.png") == "http://[::1/a.png"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"images": [], "categories": [1]}, "labels.json categories item 1: expected an object, got a number"),
        ({"images": [1], "categories": []}, "labels.json images item 1: expected an object, got a number"),
        (
            {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": [{"image_id": [1]}]},
            "labels.json annotations item 1: image_id must be text, got a list",
        ),
        ([{"data": "x", "annotations": []}], "labels.json task 1: data must be an object, got text"),
        ([{"data": {"image": "a.png"}, "annotations": ["x"]}], "labels.json task 1 annotations item 1: expected an"),
        ([{"data": {"image": "a.png"}, "annotations": {"a": 1}}], "task 1 annotations: expected a list of objects"),
        (
            [{"data": {"image": "a.png"}, "annotations": [{"result": ["x"]}]}],
            "labels.json task 1 annotation 1 result item 1: expected an object, got text",
        ),
        (
            [{"data": {"image": "a.png", "sha256": [1]}, "annotations": [{"result": []}]}],
            "labels.json task 1: data.sha256 must be text, got a list",
        ),
        ({"format": "picsift-labels", "images": {"a": 1}}, "labels.json images: expected a list of objects"),
    ],
)
def test_label_json_of_the_wrong_shape_names_the_item(tmp_path: Path, payload: object, message: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(DatasetError) as e:  # was TypeError or AttributeError
        read_label_file(path)
    assert message in str(e.value)


def test_label_json_too_deep_or_too_long_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text('[{"image": "a", "label": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    with pytest.raises(DatasetError, match="labels.json: not a label file .lists or objects nested too deeply"):
        read_label_file(path)  # was RecursionError
    path.write_text('[{"image": ' + "1" * 5000 + ', "label": "a"}]')
    with pytest.raises(DatasetError, match="labels.json: not valid JSON .Exceeds the limit"):
        read_label_file(path)  # was ValueError


def test_picsift_json_path_as_a_number_is_text(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"format": "picsift-labels", "images": [{"path": 17, "label": " cat "}]}))
    (record,) = read_label_file(path).records
    assert (record.path, record.labels) == ("17", ("cat",))


@pytest.mark.parametrize(
    ("cls", "text", "message"),
    [
        (TrainConfig, "seed: 3\nepochs: abc\n", "line 2: epochs: expected a whole number or nothing (null), got 'abc'"),
        (TrainConfig, "epochs: 2001-01-01\n", "line 1: epochs: expected a whole number"),
        (TrainConfig, "lr: .nan\n", "line 1: lr: expected a finite number or nothing (null), got nan"),
        (TrainConfig, "seed: 1.5\n", "line 1: seed: expected a whole number, got 1.5"),
        (TrainConfig, "workspace: 5\n", "line 1: workspace: expected a path or nothing (null), got 5"),
        (TrainConfig, "model_params: [1]\n", "line 1: model_params: expected a mapping of setting names to values"),
        (TrainConfig, "model_params: {1: 2}\n", "model_params: expected a mapping of setting names to values"),
        (TrainConfig, "time_budget_min: 1e999\n", "time_budget_min: expected a finite number"),
        (TrainConfig, "lr: " + "9" * 400 + "\n", "lr: expected a finite number"),
        (EvalConfig, "top_k: 5\n", "line 1: top_k: expected a list of whole numbers, e.g. [1, 5], got 5"),
        (CleanConfig, "checks: abc\n", "line 1: checks: expected a list of texts, e.g. [a, b], got 'abc'"),
        (TrainConfig, "1: 2\n", "unknown settings ['1']"),
        (TrainConfig, "schedule: linear\n", "line 1: --schedule must be onecycle or cosine, got 'linear'"),
        (TrainConfig, "epochs: " + "9" * 5000 + "\n", "Exceeds the limit (4300 digits)"),
        (TrainConfig, "[" * 5000, "lists or mappings nested too deeply"),
    ],
)
def test_yaml_settings_of_the_wrong_kind_name_file_line_and_key(
    tmp_path: Path, cls: type, text: str, message: str
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:  # was TypeError, or silently kept (lr: .nan, seed: 1.5)
        load_yaml_overrides(cls, path)
    assert "train.yaml" in str(e.value) and message in str(e.value)


def test_yaml_settings_of_the_right_kind_are_read(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("lr: 1\nepochs: 3\nworkspace: ws\ntop_k: [1, 3]\n".replace("top_k: [1, 3]\n", ""))
    cfg = load_yaml_overrides(TrainConfig, path, epochs=5)
    assert (cfg.lr, cfg.epochs, cfg.workspace) == (1.0, 5, Path("ws"))
    path.write_text("top_k: [1, 3]\n")
    assert load_yaml_overrides(EvalConfig, path).top_k == (1, 3)


def test_a_yaml_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_bytes(b"\xff\xfe epochs: 1")
    with pytest.raises(ConfigError, match="train.yaml: not UTF-8 text"):  # was UnicodeDecodeError
        load_yaml_overrides(TrainConfig, path)


@pytest.mark.parametrize("value", ["!!int abc", "!!float x", "!!timestamp x", "[" * 5000, "9" * 5000])
def test_param_values_pyyaml_fails_on_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="cannot read the value of --param"):  # was ValueError/AttributeError/...
        parse_params([f"a={value}"])


def test_numbers_too_large_for_a_float_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="fastcnn model_params filter_lr: expected a number above 0"):
        FastRecipe.from_params({"filter_lr": 10**400})  # was OverflowError
    with pytest.raises(ConfigError, match="transfer model_params lr: expected a number"):
        TransferRecipe.from_params({"lr": 10**400})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="transfer model_params epochs: expected a whole number"):
            TransferRecipe.from_params({"epochs": bad})  # was ValueError / OverflowError from int()


def test_server_top_k_of_infinity_is_a_422() -> None:
    from picsift.deploy.server.inputs import parse_top_k
    from picsift.web.errors import ApiError

    with pytest.raises(ApiError) as e:
        parse_top_k(json.loads("1e999"), 3, 10)  # was OverflowError (a 500)
    assert (e.value.status, e.value.code) == (422, "invalid_top_k")


def test_a_tar_member_name_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    assert safe_member_path("a\x00b.png") is None
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("ok.png", "\x00bad\u00e9.png"):  # not ASCII: the name goes in a PAX header, NUL and all
            info = tarfile.TarInfo(name)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    out = extract(archive, tmp_path / "ws")  # was ValueError: embedded null byte
    assert [p.name for p in out.folder.iterdir()] == ["ok.png"]
    assert [m for m, _ in out.refused] == ["\x00bad\u00e9.png"]


def test_a_file_and_a_folder_of_one_name_in_an_archive_both_extract(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("CON/CON.png", "CON", "a", "a/b.png"):  # a file and a folder both named CON (and a)
            zf.writestr(name, name)
    out = extract(archive, tmp_path / "ws")  # was IsADirectoryError
    files = {p.relative_to(out.folder).as_posix(): p.read_text() for p in out.folder.rglob("*") if p.is_file()}
    assert sorted(files.values()) == ["CON", "CON/CON.png", "a", "a/b.png"] and out.refused == []
    assert files["_CON/_CON.png"] == "CON/CON.png" and files["a"] == "a"


def test_a_zip_member_whose_name_starts_with_nul_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.png", b"x")
        zf.writestr("Qevil.png", b"y")
    archive.write_bytes(archive.read_bytes().replace(b"Qevil.png", b"\0evil.png"))  # Python reads the name as ""
    out = extract(archive, tmp_path / "ws")  # was IndexError from ZipInfo.is_dir
    assert [p.name for p in out.folder.iterdir()] == ["ok.png"]
    assert [(m, why) for m, why in out.refused] == [("", "unsafe path outside the archive folder, not extracted")]


def test_two_members_whose_names_read_as_one_path_are_both_kept(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("cls/a.png", "cls/./a.png", "cls\\a.png", "cls//a.png"):
            zf.writestr(name, name)
    out = extract(archive, tmp_path / "ws")  # the last one was the only file left
    kept = sorted(p.read_text() for p in (out.folder / "cls").iterdir())
    assert kept == sorted(["cls/a.png", "cls/./a.png", "cls\\a.png", "cls//a.png"]) and out.refused == []
    assert (out.folder / "cls" / "a.png").read_text() == "cls/a.png"
