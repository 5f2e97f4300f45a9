"""Every JSON file and --json output picsift writes is strict JSON: a value that was not measured is null, never NaN.

The pipeline test runs the real command line on 8 tiny images (2 classes, too small to hold out validation
images) and parses everything it wrote with a parser that refuses NaN and Infinity, as most JSON parsers do.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.jsonio import append_json_line, dumps, to_jsonable, write_json
from support.images import write_digits

torch.set_num_threads(1)
runner = CliRunner()
NOT_MEASURED = "no validation images: validation accuracy not measured"


def _refuse(constant: str) -> Any:
    raise ValueError(f"not strict JSON: {constant}")


def strict_loads(text: str) -> Any:
    """json.loads that rejects NaN, Infinity and -Infinity (Python's accepts them by default)."""
    return json.loads(text, parse_constant=_refuse)


def test_strict_parser_refuses_what_python_json_accepts() -> None:
    assert math.isnan(json.loads('{"a": NaN}')["a"])
    for bad in ('{"a": NaN}', "[Infinity]", "[-Infinity]"):
        with pytest.raises(ValueError, match="not strict JSON"):
            strict_loads(bad)


def test_non_finite_floats_become_null_and_numpy_values_plain_python() -> None:
    obj = {
        "nan": float("nan"),
        "inf": float("inf"),
        "np32": np.float32("nan"),
        "np64": np.float64(0.25),
        "int": np.int64(7),
        "bool": np.bool_(True),
        "nested": [(1.0, float("-inf")), {"deep": [np.float16("nan")]}],
        "array": np.array([[0.5, np.nan], [np.inf, 2.0]]),
        "ints": np.arange(3),
        "tensor": torch.tensor([1.5, float("nan")]),
        "path": Path("/tmp/x"),
        np.int32(3): "numpy key",
    }
    out = to_jsonable(obj)
    assert out == {
        "nan": None,
        "inf": None,
        "np32": None,
        "np64": 0.25,
        "int": 7,
        "bool": True,
        "nested": [[1.0, None], {"deep": [None]}],
        "array": [[0.5, None], [None, 2.0]],
        "ints": [0, 1, 2],
        "tensor": [1.5, None],
        "path": "/tmp/x",
        3: "numpy key",
    }
    assert type(out["int"]) is int and type(out["bool"]) is bool
    assert strict_loads(dumps(obj))["nested"] == [[1.0, None], {"deep": [None]}]
    with pytest.raises(TypeError, match="object is not JSON serializable|Object of type object"):
        dumps({"x": object()})
    assert strict_loads(dumps({"x": object()}, default=lambda o: "custom"))["x"] == "custom"


def test_write_json_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json(path, {"best_val_acc": float("nan"), "n": 3})
    assert strict_loads(path.read_text()) == {"best_val_acc": None, "n": 3}
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json(path, {"best_val_acc": 0.5, "bad": object()})
    assert path.read_text() == before  # the failed write kept the old file whole
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    log = tmp_path / "metrics.jsonl"
    append_json_line(log, {"epoch": 1, "val_acc": float("nan")})
    append_json_line(log, {"epoch": 2, "val_acc": np.float32(0.5)})
    assert [strict_loads(line) for line in log.read_text().splitlines()] == [
        {"epoch": 1, "val_acc": None},
        {"epoch": 2, "val_acc": 0.5},
    ]


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(build_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def _json_out(*args: str) -> dict[str, Any]:
    code, out, err = _invoke(*args, "--json")
    assert code == 0, err
    return strict_loads(out)


def test_training_without_validation_images_writes_null_not_nan(tmp_path: Path) -> None:
    # 8 training images, 4 per class: too few to hold any out for validation; 4 more as an explicit test split.
    train_dir = write_digits(tmp_path / "train", per_class=4, classes=2, seed=0)
    test_dir = write_digits(tmp_path / "test", per_class=2, classes=2, seed=5)
    ws = tmp_path / "ws"
    imported = _json_out("import", str(train_dir), "--workspace", str(ws))
    assert imported["added"] == 8 and imported["splits"] == {"train": 8}
    assert _json_out("import", str(test_dir), "--workspace", str(ws), "--split", "test")["added"] == 4

    code, out, err = _invoke("train", "--workspace", str(ws), "--epochs", "1", "--seed", "0")
    assert code == 0, err
    assert NOT_MEASURED in out and "nan" not in out.lower()
    trained = _json_out("train", "--workspace", str(ws), "--epochs", "1", "--seed", "0")
    assert trained["best_val_acc"] is None and trained["model"] == "fastcnn"
    classical = _json_out("train", "--workspace", str(ws), "--model", "knn", "--features", "color-hist")
    assert classical["best_val_acc"] is None

    for run_dir in (Path(trained["run_dir"]), Path(classical["run_dir"])):
        run = strict_loads((run_dir / "run.json").read_text())
        assert (run["n_val"], run["best_val_acc"]) == (0, None)
        rows = [strict_loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert rows and all(r["val_acc"] is None for r in rows)
        evaluated = _json_out("evaluate", "--workspace", str(ws), "--run", run_dir.name)
        assert (evaluated["split"], evaluated["n"]) == ("test", 4) and 0.0 <= evaluated["accuracy"] <= 1.0
    code, out, err = _invoke("evaluate", "--workspace", str(ws), "--run", Path(trained["run_dir"]).name)
    assert code == 0 and "accuracy" in out and "nan" not in out.lower(), err
    assert _json_out("status", "--workspace", str(ws))["images"] == 12

    written = sorted(p for p in ws.rglob("*") if p.suffix in (".json", ".jsonl"))
    names = {p.name for p in written}
    assert {"run.json", "config.json", "env.json", "data.json", "metrics.json", "metrics.jsonl", "model.json"} <= names
    for path in written:
        text = path.read_text()
        lines = text.splitlines() if path.suffix == ".jsonl" else [text]
        for line in lines:
            strict_loads(line)  # raises on NaN / Infinity
    assert not [p for p in ws.rglob("*.tmp")]

    # The catalog's JSON columns (run metrics, import counts, action payloads) are strict too.
    with sqlite3.connect(ws / "catalog.sqlite") as db:
        metrics = [strict_loads(m) for (m,) in db.execute("SELECT metrics FROM runs")]
        for table, column in (("imports", "counts"), ("actions", "payload")):
            for (value,) in db.execute(f"SELECT {column} FROM {table}"):
                strict_loads(value)
    assert len(metrics) == 3 and all(m["best_val_acc"] is None for m in metrics)


def test_web_apps_answer_strict_json_for_non_finite_metrics(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from picsift.deploy.server.app import create_app as create_server
    from picsift.deploy.server.settings import ServerSettings
    from picsift.label_app.app import create_app as create_label_app
    from picsift.label_app.settings import LabelSettings
    from picsift.web.responses import StrictJSONResponse

    assert StrictJSONResponse({"ece": float("nan"), "n": np.int64(2)}).body == b'{"ece":null,"n":2}'
    app = FastAPI(default_response_class=StrictJSONResponse)

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        return {"val_acc": float("nan"), "history": [{"val_loss": float("inf")}]}

    response = TestClient(app).get("/metrics")
    assert response.status_code == 200 and strict_loads(response.text) == {
        "val_acc": None,
        "history": [{"val_loss": None}],
    }
    # Both of picsift's apps answer with it by default (Starlette's own JSONResponse would fail with a 500).
    label_app = create_label_app(LabelSettings(workspace=tmp_path / "ws"))
    server_app = create_server(ServerSettings(bundle=tmp_path / "bundle", workspace=tmp_path / "ws"))
    assert label_app.router.default_response_class is server_app.router.default_response_class is StrictJSONResponse
    settings = ServerSettings(bundle=tmp_path / "bundle", max_wait_ms=2.5)
    assert ServerSettings.from_json(settings.to_json()) == settings  # the workers' settings, through the writer
