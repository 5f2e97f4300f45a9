"""Object storage as an image location: import a prefix, train from it, predict on object URLs, export a bundle
to a bucket and load it back, against a real S3 API (moto's server on localhost, no network); error cases give
one line naming the URL and exit code 2. memory:// covers the storage layer's own rules quickly."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import picsift
from picsift import api
from picsift.cli import build_app
from picsift.data import storage
from picsift.deploy.server import create_app
from picsift.errors import DatasetError, StorageError
from picsift.store import Workspace
from support.deploy import LiveServer
from support.images import write_digits

torch.set_num_threads(1)
BUCKET = "picsift-test"


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3:
    endpoint: str
    local: Path  # the tree uploaded to s3://BUCKET/digits/
    root: Path  # a folder for the tests' workspaces


def _tree(root: Path) -> Path:
    """Digits in folder-per-class layout, plus a file that does not decode, hidden objects and a nested folder."""
    local = write_digits(root / "digits", per_class=8, classes=3, size=16)
    (local / "2" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    first = sorted((local / "0").glob("*.png"))[0]
    (local / ".hidden.png").write_bytes(first.read_bytes())
    (local / "1" / ".cache").mkdir()
    (local / "1" / ".cache" / "x.png").write_bytes(first.read_bytes())
    (local / "1" / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(local / "1" / "nested" / "deeper" / "red.png")
    (local / "0" / "notes.txt").write_text("not an image")
    return local


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("s3")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "PICSIFT_STORAGE_OPTIONS"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_MAX_ATTEMPTS", "1")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(root / "no-credentials"))
        mp.setenv("AWS_CONFIG_FILE", str(root / "no-config"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg-cache"))
        local = _tree(root)
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir(BUCKET)
        for p in sorted(local.rglob("*")):
            if p.is_file():
                fs.put_file(str(p), f"{BUCKET}/digits/{p.relative_to(local).as_posix()}")
        yield S3(endpoint, local, root)
    server.stop()


def _catalog(ws: Path, root: str) -> list[tuple[str, str | None, str, bool, str | None]]:
    """(path below the source, label, sha256, readable, split) of every row, sorted."""
    w = Workspace.open(ws)
    try:
        rows = w.catalog.images(readable=None, include_duplicates=True)
        out = [(r.path[len(root) :].lstrip("/"), r.label, r.sha256, r.readable, r.split) for r in rows]
    finally:
        w.close()
    return sorted(out)


@pytest.fixture(scope="module")
def imported(s3: S3) -> tuple[Path, dict]:
    ws = s3.root / "ws-s3"
    code, out, err = cli("import", f"s3://{BUCKET}/digits/", "-w", str(ws), "--json")
    assert code == 0, err
    return ws, json.loads(out)


def test_import_of_a_prefix_gives_the_catalog_of_the_same_local_tree(s3: S3, imported: tuple[Path, dict]) -> None:
    ws, remote = imported
    local = api.import_images(str(s3.local), workspace=s3.root / "ws-local").to_dict()
    for key in ("added", "duplicates", "unreadable", "skipped", "skipped_by_reason", "classes", "labeled", "splits"):
        assert remote[key] == local[key], key
    assert remote["classes"] == ["0", "1", "2"]
    assert remote["added"] == 25 and remote["unreadable"] == 1  # 24 digits + the nested red square; the corrupt one
    assert remote["skipped_by_reason"] == {"hidden or system file": 2, "not an image file": 1}
    assert remote["kind"] == "folder" and remote["source"] == f"s3://{BUCKET}/digits/"
    assert [(f["path"], f["reason"]) for f in remote["unreadable_files"]] == [
        (f"s3://{BUCKET}/digits/2/corrupt.png", "corrupt image: the data starts like PNG but its header cannot be read")
    ]
    assert _catalog(ws, f"s3://{BUCKET}/digits/") == _catalog(s3.root / "ws-local", str(s3.local))
    nested = [r for r in _catalog(ws, "") if r[0].endswith("nested/deeper/red.png")]
    assert nested and nested[0][1] == "1"  # an object in a nested prefix of a class folder is that class
    code, out, err = cli("import", f"s3://{BUCKET}/digits", "-w", str(ws), "--json")  # again, no trailing slash
    assert code == 0, err
    again = json.loads(out)
    assert (again["added"], again["already_present"]) == (0, 26)


def test_train_predict_export_and_load_back_from_the_bucket(s3: S3, imported: tuple[Path, dict]) -> None:
    ws, _ = imported
    code, _, err = cli("train", "-w", str(ws), "--epochs", "1", "--device", "cpu")
    assert code == 0, err
    w = Workspace.open(ws)
    trained = {r.sha256 for split in ("train", "val") for r in w.catalog.images(split=split)}
    w.close()
    cached = {p.name for p in (ws / "cache" / "objects").rglob("*") if p.is_file()}
    assert trained and trained <= cached  # each object's bytes kept once, under its sha256, for later stages

    code, out, err = cli("predict", f"s3://{BUCKET}/digits/0/", f"s3://{BUCKET}/digits/2/corrupt.png", "-w",
                         str(ws), "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    paths = [p["path"] for p in result["predictions"]]
    assert len(paths) == 9 and all(p.startswith(f"s3://{BUCKET}/digits/0/") for p in paths[:8])
    assert all("label" in p for p in result["predictions"][:8])
    assert "error" in result["predictions"][8]
    assert [(s["path"], s["reason"]) for s in result["skipped"]] == [
        (f"s3://{BUCKET}/digits/0/notes.txt", "not an image file (.txt)")
    ]

    url = f"s3://{BUCKET}/bundles/digits"
    code, out, err = cli("export", "-w", str(ws), "--out", url, "--samples", "8", "--json")
    assert code == 0, err
    assert json.loads(out)["bundle"] == url
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    manifest = json.loads(fs.cat_file(f"{BUCKET}/bundles/digits/{storage.MANIFEST_FILE}"))
    assert "bundle.json" in manifest["files"]
    for rel, meta in manifest["files"].items():
        assert hashlib.sha256(fs.cat_file(f"{BUCKET}/bundles/digits/{rel}")).hexdigest() == meta["sha256"]

    run_preds = api.predict(f"s3://{BUCKET}/digits/1/", workspace=ws).to_dict()["predictions"]
    bundle_preds = api.predict(f"s3://{BUCKET}/digits/1/", bundle=url).to_dict()["predictions"]
    assert [p["label"] for p in bundle_preds] == [p["label"] for p in run_preds]
    assert len(run_preds) == 9  # 8 digits + the nested red square; the hidden folder's copy is left out

    server = api.model_server(url, workspace=ws)  # `picsift serve s3://...`: the bundle downloaded, then served
    assert server.model == json.loads(fs.cat_file(f"{BUCKET}/bundles/digits/bundle.json"))["model"]
    with LiveServer(create_app(server.settings)) as srv, picsift.Client(srv.url) as client:
        served = client.predict(s3.local / "1" / sorted(p.name for p in (s3.local / "1").glob("*.png"))[0])
    assert served["label"] == bundle_preds[0]["label"]
    code, out, err = cli("check-drift", f"s3://{BUCKET}/digits/1/", "-w", str(ws), "--json")  # a prefix as input
    assert code == 2 and f"s3://{BUCKET}/digits/1/ holds 9 readable images" in err  # listed and read: too few

    # A reader never takes half an upload: without the manifest (an upload under way) there is no bundle.
    fs.rm_file(f"{BUCKET}/bundles/digits/{storage.MANIFEST_FILE}")
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]), ignore_errors=True)
    code, _, err = cli("predict", f"s3://{BUCKET}/digits/1/", "--bundle", url)
    assert code == 2 and url in err and "no complete upload" in err and "Traceback" not in err


def test_export_clean_to_an_empty_prefix(s3: S3, imported: tuple[Path, dict]) -> None:
    ws, _ = imported
    dest = f"s3://{BUCKET}/clean/v1/"
    code, out, err = cli("export-clean", dest, "-w", str(ws), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["dest"] == dest and done["images"] == 25 and done["classes"] == {"0": 8, "1": 9, "2": 8}
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    keys = sorted(k.split("/clean/v1/")[1] for k in fs.find(f"{BUCKET}/clean/v1"))
    assert len([k for k in keys if k.endswith(".png")]) == 25 and storage.MANIFEST_FILE in keys
    code, _, err = cli("export-clean", dest, "-w", str(ws))
    assert code == 2 and "already holds objects" in err and dest in err


def test_label_app_shows_objects_and_status_finds_deleted_ones(s3: S3, tmp_path: Path) -> None:
    from support.label import app_client

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for p in sorted((s3.local / "2").glob("*.png"))[:3]:
        fs.put_file(str(p), f"{BUCKET}/few/{p.name}")
    ws = tmp_path / "ws"
    assert api.import_images(f"s3://{BUCKET}/few/", workspace=ws, label="two").added == 3
    w = Workspace.open(ws)
    try:
        rows = w.catalog.images()
        with app_client(w) as client:
            thumb = client.get(f"/api/images/{rows[0].id}/thumb")
            assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"
            assert client.get(f"/api/images/{rows[1].id}/full").status_code == 200
            fs.rm_file(rows[2].path)
            gone = client.get(f"/api/images/{rows[2].id}/thumb")
            assert gone.status_code == 404 and "missing in object storage" in gone.json()["detail"]
    finally:
        w.close()
    assert api.status(workspace=ws).missing == [rows[2].path]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://no-such-bucket-picsift/photos/", "no such bucket"),
        (f"s3://{BUCKET}/no/such/prefix/", "no such object or prefix"),
    ],
)
def test_missing_bucket_or_prefix_is_one_line_exit_2(s3: S3, url: str, expected: str) -> None:
    code, _, err = cli("import", url, "-w", str(s3.root / "ws-missing"))
    assert code == 2, err
    assert url.rstrip("/") in err and expected in err and "Traceback" not in err
    code, _, err = cli("predict", url, "-w", str(s3.root / "ws-missing"))
    assert code == 2 and url.rstrip("/") in err and "Traceback" not in err


def test_unreachable_endpoint_and_missing_credentials(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"s3://{BUCKET}/digits/"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = cli("import", url, "-w", str(s3.root / "ws-down"))
    assert code == 2 and url in err and "cannot reach the storage endpoint" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = cli("import", url, "-w", str(s3.root / "ws-down"))
    assert code == 2 and url in err and "no credentials found" in err and "Traceback" not in err


def test_storage_option_flag_reaches_the_file_system(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # wrong: the flag's endpoint wins
    try:
        code, out, err = cli("--storage-option", f"endpoint_url={s3.endpoint}", "predict",
                             f"s3://{BUCKET}/digits/2/", "-w", str(s3.root / "ws-none"))  # fmt: skip
    finally:
        storage.set_options({})
    assert code == 2 and "ws-none" in err  # the prefix was listed; only the missing workspace stops it
    code, _, err = cli("--storage-option", "no-equals-sign", "status")
    assert code == 2 and "KEY=VALUE" in err


# ---- the layer itself, on memory:// -----------------------------------------------------------------------------


@pytest.fixture
def mem() -> Iterator[str]:
    fs = fsspec.filesystem("memory")
    root = f"/t{os.getpid()}-{id(fs)}"
    yield f"memory://{root.lstrip('/')}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_remote_tree_walks_like_the_local_walk(tmp_path: Path, mem: str) -> None:
    local = _tree(tmp_path)
    fsspec.filesystem("memory").put(str(local), storage.join(mem, "d"), recursive=True)
    tree = storage.RemoteTree(storage.join(mem, "d"))
    images, skipped = tree.walk()
    assert [u[len(tree.root) :] for u in images] == [
        *(f"0/{p.name}" for p in sorted((local / "0").glob("*.png"))),
        *(f"1/{p.name}" for p in sorted((local / "1").glob("*.png"))),
        "1/nested/deeper/red.png",
        *(f"2/{p.name}" for p in sorted((local / "2").glob("*.png"))),
    ]
    assert sorted((u[len(tree.root) :], why) for u, why in skipped) == [
        (".hidden.png", "hidden or system file"),
        ("0/notes.txt", "not an image file (.txt)"),
        ("1/.cache/x.png", "hidden or system file"),
    ]
    assert list(storage.iter_remote_images(images[0])) == [images[0]]  # one object is itself
    with pytest.raises(StorageError, match="no such object or prefix"):
        storage.RemoteTree(storage.join(mem, "nothing"))


def test_missing_objects_and_the_content_addressed_cache(tmp_path: Path, mem: str) -> None:
    fs = fsspec.filesystem("memory")
    urls = [storage.join(mem, "a", f"{i}.png") for i in range(5)]
    for u in urls:
        fs.pipe(u, u.encode())
    assert storage.missing_objects(urls) == {}
    fs.rm(urls[1])
    gone = storage.join(mem, "b", "x.png")
    assert storage.missing_objects([*urls, gone]) == {
        urls[1]: "missing in object storage",
        gone: "missing in object storage",
    }
    sha = hashlib.sha256(urls[0].encode()).hexdigest()
    assert storage.cached_bytes(urls[0], sha, tmp_path) == urls[0].encode()
    fs.rm(urls[0])  # read from the cache from now on
    assert storage.image_source(urls[0], sha, tmp_path) == urls[0].encode()
    assert (tmp_path / "objects" / sha[:2] / sha).read_bytes() == urls[0].encode()
    with pytest.raises(StorageError, match="no such object"):
        storage.read_bytes(urls[0])


def test_published_folder_is_fetched_whole_or_not_at_all(tmp_path: Path, mem: str) -> None:
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "bundle.json").write_text("{}")
    (src / "model" / "w.bin").write_bytes(b"weights")
    url = storage.join(mem, "bundles", "b1")
    with pytest.raises(StorageError, match="no complete upload"):
        storage.fetch_folder(url, tmp_path / "dest")
    storage.publish_folder(src, url)
    got = storage.fetch_folder(url, tmp_path / "dest")
    assert (got / "model" / "w.bin").read_bytes() == b"weights"
    fsspec.filesystem("memory").pipe(storage.join(url, "model", "w.bin"), b"half of a new upload")
    with pytest.raises(StorageError, match="changed while downloading"):
        storage.fetch_folder(url, tmp_path / "other")
    (src / "model" / "w.bin").unlink()
    storage.publish_folder(src, url)  # a new upload drops what the old manifest listed and the new one does not
    assert not fsspec.filesystem("memory").exists(storage.join(url, "model", "w.bin"))


def test_manifest_in_object_storage_names_objects_relative_to_it(tmp_path: Path, mem: str) -> None:
    local = write_digits(tmp_path / "d", per_class=2, classes=2)
    fs = fsspec.filesystem("memory")
    fs.put(str(local), storage.join(mem, "imgs"), recursive=True)
    names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*.png"))
    lines = [
        "path,label",
        *(f"imgs/{n},{n.split('/')[0]}" for n in names[:3]),
        f"{storage.join(mem, 'imgs', names[3])},1",
    ]
    fs.pipe(storage.join(mem, "labels.csv"), "\n".join(lines).encode())
    result = api.import_images(storage.join(mem, "labels.csv"), workspace=tmp_path / "ws")
    assert (result.kind, result.added, result.classes) == ("csv", 4, ["0", "1"])
    fs.pipe(storage.join(mem, "bad.csv"), b"path,label\nimgs/0/nope.png,0\n")
    with pytest.raises(DatasetError, match=r"bad.csv line 2: missing in object storage: memory://.*nope.png"):
        api.import_images(storage.join(mem, "bad.csv"), workspace=tmp_path / "ws")


def test_clean_reads_each_object_once_and_again_from_the_cache(
    tmp_path: Path, mem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fine quality measurements and the report's thumbnails open originals: for object URLs they go through
    the workspace's object cache, so a clean downloads each object at most once and a second clean none."""
    from fsspec.implementations.memory import MemoryFileSystem

    rng = np.random.default_rng(0)
    fs = fsspec.filesystem("memory")
    for i in range(10):  # 160 px: at least twice the 64 px decoded copy, so the originals are opened
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(buf, "PNG")
        fs.pipe(storage.join(mem, "imgs", "cat" if i % 2 else "dog", f"{i}.png"), buf.getvalue())
    twin = storage.join(mem, "imgs", "dog", "0.png")
    fs.pipe(storage.join(mem, "imgs", "dog", "0-copy.png"), fs.cat_file(twin))  # a duplicate: shown in the report
    ws = tmp_path / "ws"
    api.import_images(storage.join(mem, "imgs"), workspace=ws)

    reads: list[str] = []
    real_cat = MemoryFileSystem.cat_file

    def counted(self: MemoryFileSystem, path: str, *args: object, **kwargs: object) -> bytes:
        reads.append(path)
        return real_cat(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MemoryFileSystem, "cat_file", counted)
    first = api.clean(workspace=ws, checks=("duplicates", "quality"))
    assert any(f.kind == "exact_duplicate" for f in first.findings)
    assert len(reads) == len(set(reads)) <= 11  # each object downloaded once at most
    reads.clear()
    api.clean(workspace=ws, checks=("duplicates", "quality"))
    assert reads == []  # everything from the cache
