"""The model server's prediction log is bounded: size-based rotation, a fixed number of files kept."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from picsift.deploy.server.prediction_log import PredictionLog
from picsift.deploy.server.settings import ServerSettings
from picsift.errors import ConfigError


def record(i: int) -> dict[str, object]:
    return {"prediction_id": f"{i:032x}", "label": "cat", "confidence": 0.9, "sha256": "ab" * 32}


def test_the_log_rotates_by_size_and_keeps_a_fixed_number_of_files(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", max_bytes=4096, keep_files=3)
    line = len(json.dumps(record(0), separators=(",", ":"))) + 1
    n = 2000  # about 300 KB of lines: unbounded, the log would hold them all
    for i in range(0, n, 4):
        log.write([record(j) for j in range(i, i + 4)])
    files = log.files()
    assert len(files) == 3
    assert all(f.stat().st_size <= 4096 for f in files)
    assert sum(f.stat().st_size for f in files) <= 3 * 4096
    ids = [json.loads(x)["prediction_id"] for f in files for x in f.read_text().splitlines()]  # whole lines only
    # The newest predictions are all there, in order, up to the last one.
    assert ids == [f"{i:032x}" for i in range(n - len(ids), n)]
    assert len(ids) >= 2 * (4096 // line)
    # Today's current file last, after the two newest rotated parts of it.
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    parts = [int(f.name.split(".")[1]) for f in files[:-1]]
    assert files[-1].name == f"{day}.jsonl" and parts[1] == parts[0] + 1 and parts[0] > 10
    assert [f.name for f in files[:-1]] == [f"{day}.{k}.jsonl" for k in parts]


def test_the_limits_are_server_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--prediction-log-files must be a whole number from 1 to 10000, got 0"):
        ServerSettings(bundle=tmp_path, prediction_log_files=0).validate()
    settings = ServerSettings(bundle=tmp_path, prediction_log_max_bytes=1 << 20, prediction_log_files=4)
    assert ServerSettings.from_json(settings.to_json()) == settings.validate()
