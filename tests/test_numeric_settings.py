"""Numeric settings that are not finite or out of range: one clear line (CLI exit 2), a 4xx (server), a
ConfigError (API, SDK), always naming the setting and the valid range, never a huge value digit by digit."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from picsift import api
from picsift.cli import build_app
from picsift.config import CleanConfig, EvalConfig, ImportConfig, TrainConfig, check_number, check_port
from picsift.deploy.client import Client
from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings, create_app
from picsift.errors import ConfigError
from support.deploy import LiveServer, make_workspace, train_run

NAN, INF = math.nan, math.inf


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(workspace, run folder, bundle) of a one-epoch fast CNN on tiny images."""
    root = tmp_path_factory.mktemp("numbers")
    ws = make_workspace(root, per_class=8)
    run = train_run(ws, "fastcnn")
    return ws, run, export(run, root / "bundle", samples=4)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error_line(code: int, out: str, err: str) -> str:
    """The error line of a command that must exit 2 with one line on stderr, nothing on stdout, no traceback."""
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and out == "", (out, err)
    return lines[0]


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [
        (NAN, {"low": 0, "low_open": True}, "--x must be a finite number greater than 0, got nan"),
        (INF, {"low": 0}, "--x must be a finite number at least 0, got inf"),
        (-INF, {}, "--x must be a finite number, got -inf"),
        (-1e308, {"low": 1, "whole": True}, "--x must be a whole number at least 1, got -1e+308"),
        (2.0, {"low": 1, "whole": True}, "--x must be a whole number at least 1, got 2.0"),
        (True, {"low": 0}, "--x must be a finite number at least 0, got True"),
        (1.0, {"low": 0, "high": 1, "high_open": True}, "--x must be a finite number in [0, 1), got 1.0"),
        (0, {"low": 1, "high": 65535, "whole": True}, "--x must be a whole number from 1 to 65535, got 0"),
        (
            10**400,
            {"high": 9, "whole": True},
            "--x must be a whole number at most 9, got a whole number of about 401 digits",
        ),
    ],
)
def test_check_number_states_the_range_and_never_a_huge_value(value: object, bounds: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_number(value, "--x", **bounds)  # type: ignore[type-var]
    assert str(e.value) == expected
    assert check_number(0.5, "--x", low=0, high=1) == 0.5 and check_port(65535) == 65535


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (TrainConfig(time_budget_min=NAN), "--time-budget"),
        (TrainConfig(time_budget_min=INF), "--time-budget"),
        (TrainConfig(lr=NAN), "--lr"),
        (TrainConfig(lr=0.0), "--lr"),
        (TrainConfig(weight_decay=INF), "--weight-decay"),
        (TrainConfig(label_smoothing=NAN), "--label-smoothing"),
        (TrainConfig(mixup=NAN), "mixup"),
        (TrainConfig(cutmix=-1.0), "cutmix"),
        (TrainConfig(random_erasing=1.5), "random_erasing"),
        (TrainConfig(image_size=0), "--image-size"),
        (TrainConfig(batch_size=0), "--batch-size"),
        (TrainConfig(seed=-1), "--seed"),
        (TrainConfig(model_params={"C": NAN}), "--param C"),
        (CleanConfig(near_dup_threshold=NAN), "--near-dup-threshold"),
        (CleanConfig(blur_z=INF), "blur_z"),
        (CleanConfig(outlier_z=NAN), "outlier_z"),
        (CleanConfig(label_c=NAN), "label_c"),
        (CleanConfig(dark_p95=300.0), "dark_p95"),
        (CleanConfig(label_cnn_budget_s=INF), "label_cnn_budget_s"),
        (EvalConfig(top_k=(1, 0)), "top_k"),
        (ImportConfig(source="x", val_fraction=NAN), "--val-fraction"),
        (ImportConfig(source="x", url_timeout_s=INF), "--timeout"),
        (ImportConfig(source="x", archive_max_expansion=NAN), "--max-expansion"),
    ],
)
def test_config_validate_refuses_nan_inf_and_out_of_range(config: object, field: str) -> None:
    with pytest.raises(ConfigError, match="must be a (finite|whole) number") as e:
        config.validate()  # type: ignore[attr-defined]
    assert str(e.value).startswith(field), str(e.value)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--time-budget", "nan"], "--time-budget (minutes) must be a finite number in (0, 525600], got nan"),
        (["--time-budget", "inf", "--model", "fastcnn", "--epochs", "1"], "got inf"),
        (["--lr", "nan"], "--lr must be a finite number greater than 0, got nan"),
        (["--weight-decay", "-inf"], "--weight-decay must be a finite number at least 0, got -inf"),
        (["--label-smoothing", "nan"], "--label-smoothing must be a finite number in [0, 1), got nan"),
        (["--image-size", "0"], "--image-size (pixels) must be a whole number from 16 to 4096, got 0"),
    ],
)
def test_train_refuses_bad_numbers_before_any_run(tmp_path: Path, flags: list[str], expected: str) -> None:
    ws = make_workspace(tmp_path, per_class=2)
    line = one_error_line(*cli("train", "-w", str(ws), *flags))
    assert expected in line
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())


def test_train_model_api_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--lr must be a finite number greater than 0, got nan"):
        api.train_model(workspace=tmp_path / "absent", lr=NAN)


@pytest.mark.parametrize("port", ["99999", "-5", "0"])
def test_serve_refuses_a_port_before_printing_anything(trained: tuple[Path, Path, Path], port: str) -> None:
    _, _, bundle = trained
    line = one_error_line(*cli("serve", str(bundle), "--port", port))
    assert line == f"error: --port must be a whole number from 1 to 65535, got {port}"


def test_label_and_the_api_refuse_a_port(trained: tuple[Path, Path, Path]) -> None:
    ws, _, bundle = trained
    line = one_error_line(*cli("label", "-w", str(ws), "--port", "70000"))
    assert line == "error: --port must be a whole number from 1 to 65535, got 70000"
    with pytest.raises(ConfigError, match="--port must be a whole number from 1 to 65535, got 99999"):
        api.model_server(bundle, port=99999)
    with pytest.raises(ConfigError, match="--max-wait-ms must be a finite number from 0 to 60000, got nan"):
        api.model_server(bundle, max_wait_ms=NAN)


@pytest.mark.parametrize("k", ["0", "-2"])
def test_predict_refuses_top_k_below_1(trained: tuple[Path, Path, Path], k: str) -> None:
    _, run, bundle = trained
    image = next((bundle.parent / "images" / "1").glob("*.png"))
    line = one_error_line(*cli("predict", str(image), "--run", str(run), "--top-k", k))
    assert line == f"error: --top-k must be a whole number at least 1, got {k}"
    assert cli("predict", str(image), "--run", str(run), "--top-k", "2")[0] == 0


@pytest.mark.parametrize("samples", ["0", "-1"])
def test_export_refuses_samples_below_1(trained: tuple[Path, Path, Path], tmp_path: Path, samples: str) -> None:
    ws, run, _ = trained
    out = tmp_path / "bundle"
    line = one_error_line(*cli("export", "-w", str(ws), "--run", str(run), "--samples", samples, "--out", str(out)))
    assert line == f"error: --samples must be a whole number from 1 to 100000, got {samples}"
    assert not out.exists()


def test_server_and_sdk_check_top_k_alike(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, bundle = trained
    png = next((bundle.parent / "images" / "1").glob("*.png")).read_bytes()
    image = base64.b64encode(png).decode()
    settings = ServerSettings(bundle=bundle, workspace=tmp_path / "ws")
    with LiveServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        for body_k in (0, -1e308, 2.5):
            r = c.post("/v1/predict", json={"image": image, "top_k": body_k})
            assert r.status_code == 422 and r.json()["error"] == "invalid_top_k", r.text
            assert r.json()["detail"].startswith("top_k must be a whole number at least 1, got ")
            assert len(r.json()["detail"]) < 80 and "0000000000" not in r.json()["detail"], r.json()["detail"]
        with Client(srv.url) as sdk:
            assert len(sdk.predict(png, top_k=2)["top_k"]) == 2
            for bad in (0, -1):
                with pytest.raises(ConfigError, match=f"top_k must be a whole number at least 1, got {bad}"):
                    sdk.predict(png, top_k=bad)  # was dropped silently (`if top_k`)
                with pytest.raises(ConfigError, match="top_k must be a whole number at least 1"):
                    sdk.predict_batch([png], top_k=bad)


def test_a_settings_file_value_out_of_range_names_the_file_and_line(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=2)
    settings = tmp_path / "train.yaml"
    settings.write_text("model: fastcnn\nimage_size: 0\n")
    line = one_error_line(*cli("train", "-w", str(ws), "--config", str(settings)))
    assert line == (
        f"error: config file {settings} line 2: --image-size (pixels) must be a whole number from 16 to 4096, got 0"
    )
