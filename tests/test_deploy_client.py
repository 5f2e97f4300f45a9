"""The Python SDK (`picsift.Client`) against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import picsift
from picsift.deploy.client import ServerError
from picsift.deploy.export import export
from picsift.deploy.server import ServerSettings, create_app
from support.deploy import LiveServer, make_workspace, train_run


def test_client_predict_batch_feedback_and_errors(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=12)
    bundle = export(train_run(ws, "fastcnn"), tmp_path / "bundle")
    files = sorted((tmp_path / "images").rglob("*.png"))[:3]
    settings = ServerSettings(bundle=bundle, workspace=ws, api_key="k1")
    with LiveServer(create_app(settings)) as srv:
        with picsift.Client(srv.url) as anonymous, pytest.raises(ServerError) as e:
            anonymous.predict(files[0])
        assert e.value.status == 401 and e.value.code == "missing_api_key"

        client = picsift.Client(srv.url, api_key="k1")
        assert client.health()
        by_path = client.predict(files[0], top_k=2)
        by_bytes = client.predict(files[0].read_bytes())
        by_pil = client.predict(Image.open(files[0]))
        assert by_path["label"] == by_bytes["label"] == by_pil["label"]
        assert abs(by_path["confidence"] - by_pil["confidence"]) < 1e-5 and len(by_path["top_k"]) == 2

        batch = client.predict_batch([*files, b"not an image"])
        assert [b.get("error") for b in batch] == [None, None, None, "not_an_image"]
        assert batch[0]["label"] == by_path["label"]

        fb = client.feedback("2", prediction_id=by_path["prediction_id"], comment="sdk")
        assert fb["status"] == "pending" and fb["sha256"]
        fb2 = client.feedback("1", image=files[1])
        assert fb2["feedback_id"] == fb["feedback_id"] + 1

        with pytest.raises(ServerError) as e:
            client.predict(b"GIF89a truncated")
        assert e.value.status == 422 and "truncated or corrupt" in e.value.message
        info = client.model()
        assert info["classes"] == ["0", "1", "2"] and info["server"]["api_key_required"] is True
        assert client.reload()["version"] == info["version"]
        client.close()
    with pytest.raises(picsift.PicsiftError, match="cannot reach"):
        picsift.Client(srv.url, timeout=2).predict(files[0])
