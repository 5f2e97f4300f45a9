"""`--label-url URL`: every image link of the evaluate, clean and cluster reports opens the labelling app where
it is actually served (another port, another machine, with its token), not only at the default address."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import CleanConfig
from picsift.errors import ConfigError
from picsift.label.links import DEFAULT_APP_URL, app_url
from picsift.store import Workspace
from picsift.store.schema import Image
from support.images import write_digits
from support.label import make_workspace

APP = "http://labels.lan:8766/?token=T0k"
LINK = re.compile(r"""href=["']([^"']*#image=(\d+))["']""")


def links(page: Path) -> list[tuple[str, int]]:
    """(href, image id) of every link into the labelling app on the page, HTML entities undone."""
    return [(href.replace("&amp;", "&"), int(i)) for href, i in LINK.findall(page.read_text())]


def cli(*args: str) -> str:
    r = CliRunner().invoke(build_app(), list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def test_the_address_is_checked() -> None:
    assert app_url(None) == DEFAULT_APP_URL and app_url(f" {APP} ") == APP
    for bad in ("labels.lan:8766", "ftp://labels.lan/", "http://", "javascript:alert(1)"):
        with pytest.raises(ConfigError, match="--label-url must be the labelling app's http"):
            app_url(bad)


def test_clean_report_links_to_the_given_app(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=6, labelled_per_class=6)
    first = ws.catalog.images()[0]
    copy = tmp_path / "copy.png"
    shutil.copyfile(first.path, copy)  # a duplicate: the report shows (and links) both copies
    data = copy.read_bytes()
    ws.catalog.add_images(
        [
            Image(
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(copy),
                byte_size=len(data),
                width=first.width,
                height=first.height,
                readable=True,
                split="train",
            )
        ]  # fmt: skip
    )
    ws.close()
    args = ["clean", "-w", str(tmp_path / "ws"), "--checks", "duplicates", "--extractor", "hand"]
    cli(*args)
    report = tmp_path / "ws" / "clean-report.html"
    default = links(report)
    assert default and all(href == f"{DEFAULT_APP_URL}#image={i}" for href, i in default)
    cli(*args, "--label-url", APP)
    given = links(report)
    assert [i for _, i in given] == [i for _, i in default]
    assert all(href == f"{APP}#image={i}" for href, i in given)
    assert first.id in {i for _, i in given} and "127.0.0.1:8765" not in report.read_text()
    bad = CliRunner().invoke(build_app(), [*args, "--label-url", "labels.lan:8766"])
    assert bad.exit_code == 2 and "--label-url must be" in bad.output
    with pytest.raises(ConfigError):  # the library checks it too, before any image is read
        from picsift.curate import run as clean_run

        clean_run(CleanConfig(workspace=tmp_path / "ws", label_url="nope"))


def test_cluster_map_links_every_image_to_the_given_app(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, per_class=5, labelled_per_class=5)
    ids = {r.id for r in ws.catalog.images()}
    ws.close()
    cli("cluster", "-w", str(tmp_path / "ws"), "--k", "3", "--features", "hog", "--label-url", APP)
    found = links(tmp_path / "ws" / "clusters" / "clusters.html")
    assert {i for _, i in found} == ids
    assert all(href == f"{APP}#image={i}" for href, i in found)


def test_evaluate_report_links_each_mistake_to_the_given_app(tmp_path: Path) -> None:
    ws_root = tmp_path / "ws"
    cli("import", str(write_digits(tmp_path / "digits", per_class=20, classes=3)), "-w", str(ws_root))
    cli("train", "-w", str(ws_root), "--epochs", "1", "--device", "cpu")
    ws = Workspace.open(ws_root)
    test_rows = ws.catalog.images(split="test", labeled=True)
    for r in test_rows:  # every test label moved on by one class: most predictions become mistakes
        ws.catalog.set_label(r.id, str((int(r.label or 0) + 1) % 3))
    ws.close()
    cli("evaluate", "-w", str(ws_root), "--device", "cpu", "--label-url", APP)
    [run_dir] = (ws_root / "runs").iterdir()
    wrong = json.loads((run_dir / "metrics.json").read_text())["mistakes"]
    found = links(run_dir / "report.html")
    assert wrong > 0 and len(found) == min(wrong, 24)
    assert all(href == f"{APP}#image={i}" for href, i in found)
    assert {i for _, i in found} <= {r.id for r in test_rows}
