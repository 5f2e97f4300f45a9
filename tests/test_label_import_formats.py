"""`picsift import-labels` on Label Studio exports (JSON, JSON-MIN, CSV) and on files it cannot read."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from picsift.cli import build_app
from picsift.config import ImportConfig
from picsift.ingest import run
from picsift.label.labels_io import import_labels
from picsift.store import Workspace

FILES = ["photos/dog_0.png", "photos/dog_1.png", "photos/dog_2.png", "photos/cat 1.png", "other/dog_2.png"]
TRIED = "tried picsift CSV/JSON, COCO, Label Studio JSON, JSON-MIN and CSV"


@pytest.fixture
def ws(tmp_path: Path):
    """A catalog of five unlabelled PNGs; two of them are named dog_2.png, in different folders."""
    data = tmp_path / "data"
    for i, rel in enumerate(FILES):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(data / rel)
    (data / "list.csv").write_text("path\n" + "\n".join(FILES) + "\n")
    run(ImportConfig(source=str(data / "list.csv"), workspace=tmp_path / "ws"))
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.close()


def _labels(ws: Workspace) -> dict[str, str | None]:
    root = str(ws.root.parent / "data") + "/"
    return {r.path.removeprefix(root): r.label for r in ws.catalog.images()}


def _last_annotator(ws: Workspace, rel: str) -> str:
    row = next(r for r in ws.catalog.images() if r.path.endswith("/" + rel))
    return str(ws.catalog.label_history(row.id)[-1]["annotator"])


def _cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(build_app(), list(args))
    return r.exit_code, r.stdout, r.stderr


def test_json_min_with_url_encoded_local_files_paths(ws: Workspace, tmp_path: Path) -> None:
    export = [
        {"image": "/data/local-files/?d=photos/dog_1.png", "choice": "dog", "annotator": "ann@example.org", "id": 1},
        {"image": "/data/local-files/?d=photos%2Fdog_2.png", "choice": "dog", "annotator": 3, "id": 2},
        {"image": "http://localhost:8080/data/local-files/?d=photos%2Fcat%201.png", "choice": {"choices": ["cat"]}},
        {"image": "/data/local-files/?d=photos%2Fgone.png", "choice": "dog", "id": 4},
    ]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(export))
    code, out, err = _cli("import-labels", str(f), "-w", str(ws.root), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["format"] == "Label Studio JSON-MIN"
    assert (report["read"], report["applied"], report["unmatched"]) == (4, 3, ["photos/gone.png"])
    assert _labels(ws) == {
        "photos/dog_0.png": None,
        "photos/dog_1.png": "dog",
        "photos/dog_2.png": "dog",  # the folder told the two dog_2.png apart
        "photos/cat 1.png": "cat",
        "other/dog_2.png": None,
    }
    assert _last_annotator(ws, "photos/dog_1.png") == "ann@example.org"
    assert _last_annotator(ws, "photos/dog_2.png") == "label-studio user 3"
    assert _last_annotator(ws, "photos/cat 1.png") == "import"  # the file names no annotator

    code, out, _ = _cli("import-labels", str(f), "-w", str(ws.root))
    assert code == 0 and "3 unchanged" in out and "1 label names no catalog image:" in out
    assert "no catalog image for photos/gone.png" in out


def test_upload_prefixed_names_match_catalog_files(ws: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "export.json"
    f.write_text(
        json.dumps(
            [
                {"image": "/data/upload/1/8f3a2b1c-dog_0.png", "choice": "dog"},
                {"image": "/data/upload/1/0badc0de-cat%201.png", "choice": "cat"},
                {"image": "/data/upload/1/1234abcd-dog_2.png", "choice": "dog"},  # two catalog files of that name
            ]
        )
    )
    report = import_labels(ws, f)
    assert report.applied == 2
    assert report.unmatched == ["/data/upload/1/1234abcd-dog_2.png (2 catalog images are named dog_2.png)"]
    labels = _labels(ws)
    assert (labels["photos/dog_0.png"], labels["photos/cat 1.png"]) == ("dog", "cat")
    assert labels["photos/dog_2.png"] is None and labels["other/dog_2.png"] is None


def _task(task_id: int, image: str, *annotations: tuple[object, list[str], bool]) -> dict[str, object]:
    return {
        "id": task_id,
        "data": {"image": image},
        "annotations": [
            {
                "id": 100 + i,
                "completed_by": who,
                "was_cancelled": cancelled,
                "result": [
                    {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": choices}}
                ],
            }
            for i, (who, choices, cancelled) in enumerate(annotations)
        ],
    }


def test_full_json_annotations_annotators_and_cancelled(ws: Workspace, tmp_path: Path) -> None:
    tasks = [
        _task(
            1, "/data/upload/2/8f3a2b1c-dog_0.png", (1, ["dog"], False), ({"id": 2, "email": "b@x.org"}, ["dog"], False)
        ),
        _task(2, "/data/local-files/?d=photos%2Fcat%201.png", (1, ["dog"], True), (2, ["cat"], False)),
        _task(3, "/data/local-files/?d=photos%2Fdog_1.png", (1, ["dog"], False), (2, ["cat"], False)),
        _task(4, "/data/local-files/?d=photos%2Fdog_2.png", (1, ["dog", "cat"], False)),
        {"id": 5, "data": {"image": "/data/local-files/?d=other%2Fdog_2.png"}, "annotations": []},
    ]
    f = tmp_path / "project-1.json"
    f.write_text(json.dumps(tasks))
    report = import_labels(ws, f)
    assert report.format == "Label Studio JSON" and report.read == 6 and report.applied == 2
    assert report.disagreements == [
        {
            "image_id": report.disagreements[0]["image_id"],
            "path": str(ws.root.parent / "data/photos/dog_1.png"),
            "labels": {"label-studio user 1": "dog", "label-studio user 2": "cat"},
        }
    ]
    assert [m["labels"] for m in report.multiple] == [["dog", "cat"]]
    labels = _labels(ws)
    assert (labels["photos/dog_0.png"], labels["photos/cat 1.png"]) == ("dog", "cat")
    assert labels["photos/dog_1.png"] is None and labels["photos/dog_2.png"] is None
    assert _last_annotator(ws, "photos/dog_0.png") == "label-studio user 1, b@x.org"
    assert _last_annotator(ws, "photos/cat 1.png") == "label-studio user 2"

    # A second choices field: which one is the class must be said.
    tasks[0]["annotations"][0]["result"].append(  # type: ignore[index]
        {"from_name": "quality", "type": "choices", "value": {"choices": ["sharp"]}}
    )
    f.write_text(json.dumps(tasks))
    code, _, err = _cli("import-labels", str(f), "-w", str(ws.root))
    assert code == 2 and "choices from several fields (choice, quality); choose the class with --field" in err
    code, out, err = _cli("import-labels", str(f), "-w", str(ws.root), "--field", "choice", "--json")
    assert code == 0, err
    assert json.loads(out)["unchanged"] == 2


def test_label_studio_csv_export(ws: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "project-1.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["annotation_id", "annotator", "choice", "created_at", "id", "image", "lead_time", "updated_at"])
        w.writerow([1, "a@x.org", "dog", "2024-05-01T10:00:00Z", 1, "/data/local-files/?d=photos%2Fdog_0.png", 2.5, ""])
        w.writerow([2, "a@x.org", "cat", "2024-05-01T10:00:01Z", 2, "/data/local-files/?d=photos%2Fcat%201.png", 1, ""])
        w.writerow([3, "a@x.org", '{"choices": ["cat", "dog"]}', "", 3, "/data/upload/3/abcdef01-dog_1.png", 1, ""])
    report = import_labels(ws, f)
    assert report.format == "Label Studio CSV" and report.read == 3 and report.applied == 2
    assert [m["labels"] for m in report.multiple] == [["cat", "dog"]]
    labels = _labels(ws)
    assert (labels["photos/dog_0.png"], labels["photos/cat 1.png"], labels["photos/dog_1.png"]) == ("dog", "cat", None)
    assert _last_annotator(ws, "photos/dog_0.png") == "a@x.org"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("export.json", [{"foo": 1, "bar": "x"}], f"no labels recognised in export.json: {TRIED}"),
        ("export.json", {"foo": 1}, f"no labels recognised in export.json: unrecognised JSON; {TRIED}"),
        ("export.json", [], f"no labels recognised in export.json: {TRIED}"),
        (
            "export.json",
            [{"image": "a.png", "what": 1, "ever": 2}],
            "export.json: cannot tell which field holds the label",
        ),
        (
            "export.json",
            [_task(1, "/data/upload/1/8f3a2b1c-dog_0.png", (1, ["dog"], True))],
            "no labels recognised in export.json: read as Label Studio JSON (1 tasks, cancelled annotations ignored), "
            "none with a label",
        ),
        ("labels.csv", "x,y\n1,2\n", "no labels recognised in labels.csv: a CSV needs a label column"),
        ("labels.csv", "path,label\nphotos/dog_0.png,\n", "read as picsift CSV (1 rows), none with a label"),
        ("labels.csv", "path;label;split\na.png;dog;train\nb.png;cat\n", "labels.csv line 3: expected 3 columns"),
        ("export.json", "[{]", "export.json line 1: not valid JSON"),
    ],
)
def test_nothing_recognisable_exits_2_and_says_what_was_tried(
    ws: Workspace, tmp_path: Path, name: str, content: object, message: str
) -> None:
    f = tmp_path / name
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    before = ws.catalog.catalog_hash()
    code, out, err = _cli("import-labels", str(f), "-w", str(ws.root))
    assert code == 2 and out == ""
    assert message in " ".join(err.split())
    assert ws.catalog.catalog_hash() == before


def test_labels_csv_from_a_european_spreadsheet_on_windows(ws: Workspace, tmp_path: Path) -> None:
    # `;`-separated, BOM, CRLF, backslash paths: read like the manifests of `picsift import`.
    f = tmp_path / "labels.csv"
    text = "\ufeffPath;Label\r\nC:\\data\\photos\\dog_0.png;dog\r\nphotos\\cat 1.png;cat, tabby\r\n"
    f.write_bytes(text.encode())
    report = import_labels(ws, f)
    assert report.format == "picsift CSV" and (report.read, report.applied, report.unmatched) == (2, 2, [])
    labels = _labels(ws)
    assert (labels["photos/dog_0.png"], labels["photos/cat 1.png"]) == ("dog", "cat, tabby")


def test_a_new_class_that_spells_a_known_one_is_named(ws: Workspace, tmp_path: Path) -> None:
    """'Bird ' beside 'bird' becomes a class of its own (labels keep their case), so the import says so."""
    first = tmp_path / "first.csv"
    first.write_text("path,label\nphotos/dog_0.png,bird\n")
    assert import_labels(ws, first).new_classes == [{"class": "bird", "images": 1, "similar": []}]
    second = tmp_path / "second.csv"
    second.write_text('path,label\nphotos/dog_1.png,"Bird "\nphotos/dog_2.png,Bird\nphotos/cat 1.png,cat\n')
    code, out, err = _cli("import-labels", str(second), "-w", str(ws.root), "--json")
    assert code == 0, err
    assert json.loads(out)["new_classes"] == [
        {"class": "Bird", "images": 2, "similar": ["bird"]},
        {"class": "cat", "images": 1, "similar": []},
    ]
    assert "warning: new class 'Bird' for 2 image(s); did you mean 'bird'?" in err and "'cat'" not in err


def test_a_label_from_a_file_withdraws_the_images_pending_proposal(ws: Workspace, tmp_path: Path) -> None:
    """A model proposed 'cat'; the file says 'dog': the image is labelled dog and the proposal is withdrawn, not
    left pending (its accept would fail with a conflict forever)."""
    from picsift.store.catalog import LabelChange

    row = next(r for r in ws.catalog.images() if r.path.endswith("/photos/dog_0.png"))
    ws.catalog.set_labels([], proposals=[LabelChange(row.id, "cat", "model", "run-1")])
    assert [h["status"] for h in ws.catalog.label_history(row.id)] == ["proposed"]
    f = tmp_path / "labels.csv"
    f.write_text("path,label\nphotos/dog_0.png,dog\n")
    assert import_labels(ws, f).applied == 1
    history = ws.catalog.label_history(row.id)
    assert [(h["label"], h["status"]) for h in history] == [("cat", "withdrawn"), ("dog", "accepted")]
