"""The catalog on SQLite and on PostgreSQL: migrations (baseline = the ORM schema, catalogs made before migrations
upgraded in place), `picsift init --catalog`, passwords kept out of files and output, and concurrent writers."""

from __future__ import annotations

import io
import json
import math
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image as PILImage
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from picsift import api
from picsift.cli import build_app
from picsift.errors import ConfigError, WorkspaceError
from picsift.label.edits import set_labels
from picsift.store import Workspace
from picsift.store.feedback import Feedback
from picsift.store.feedback_store import FeedbackStore
from picsift.store.migrate import head_revision
from picsift.store.schema import Base, Image
from support.images import require
from support.label import make_workspace
from support.postgres import NOT_AVAILABLE, PASSWORD_ROLE, Server, fresh_database

LEGACY_DUMP = Path(__file__).parent / "data" / "catalog_v1_before_migrations.sql"


def png_bytes(seed: int) -> bytes:
    """A small PNG whose bytes differ for each seed."""
    buf = io.BytesIO()
    PILImage.fromarray(np.full((8, 8, 3), seed * 7 % 256, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_migrated_schema_is_the_orm_schema(tmp_path: Path, catalog_url: str | None) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True, db_url=catalog_url)
    engine = ws.catalog.engine
    assert Feedback.__tablename__ in Base.metadata.tables  # the feedback table is part of the baseline
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        tables = set(conn.dialect.get_table_names(conn))
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert diff == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert version == head_revision()
    ws.close()


def test_a_catalog_made_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    db = sqlite3.connect(root / "catalog.sqlite")
    db.executescript(LEGACY_DUMP.read_text())
    db.close()
    ws = Workspace.open(root)
    c = ws.catalog
    rows = c.images(readable=None, include_excluded=True)
    assert len(rows) == 12 and sum(r.excluded for r in rows) == 1
    assert c.classes() == ["0", "1", "2"]
    relabelled = [r for r in rows if r.label_version == 2]
    assert len(relabelled) == 1 and relabelled[0].label == "1"
    history = c.label_history(relabelled[0].id)
    assert [(h["status"], h["origin"]) for h in history] == [("superseded", "import"), ("accepted", "manual")]
    assert history[-1]["annotator"] == "ann" and history[0]["created_at"] <= history[-1]["created_at"]
    assert [f.comment for f in FeedbackStore(ws).items()] == ["legacy"]
    with c.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == "1"
    c.set_label(rows[2].id, "2", expected_version=rows[2].label_version)  # writable as before
    ws.close()
    ws = Workspace.open(root)  # a second open finds it current and changes nothing
    assert ws.catalog.image(rows[2].id).label == "2"
    ws.close()


def test_an_unknown_newer_revision_is_refused(tmp_path: Path, catalog_url: str | None) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True, db_url=catalog_url)
    with ws.catalog.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    ws.close()
    with pytest.raises(WorkspaceError, match=r"schema revision 9999, newer than this picsift knows.*upgrade picsift"):
        _ = Workspace.open(tmp_path / "ws").catalog


def test_json_and_times_round_trip(tmp_path: Path, catalog_url: str | None) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True, db_url=catalog_url)
    c = ws.catalog
    c.record_run("r" * 150, "/runs/x", "fastcnn", "h", {"acc": math.nan, "per_class": {"Cat": 1.0}})
    c.record_run("r" * 150, "/runs/x", "fastcnn", "h2", {"acc": 0.5})  # recorded again: replaced, not doubled
    with c.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, catalog_hash, metrics FROM runs")).all()
    assert len(rows) == 1 and rows[0][1] == "h2" and len(rows[0][0]) == 150
    metrics = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert metrics == {"acc": 0.5}
    c.add_images([Image(sha256="a" * 64, path="/d/Cat.png"), Image(sha256="b" * 64, path="/d/cat.png")])
    a, b = (r.id for r in c.images())
    c.set_label(a, "Cat")
    c.set_label(b, "cat")
    assert c.classes() == ["Cat", "cat"]  # labels are case sensitive on both back ends
    assert [r.label for r in c.images()] == ["Cat", "cat"]
    action = c.exclude({b: "x"}, kind="k" * 32, actor="a" * 150)
    assert c.actions()[0]["id"] == action and c.actions()[0]["created_at"] <= c.exclusions()[0]["created_at"]
    ws.close()


def test_init_records_the_catalog_and_every_command_uses_it(tmp_path: Path, catalog_url: str | None) -> None:
    runner = CliRunner()
    app = build_app()
    ws = tmp_path / "ws"
    args = ["init", str(ws), "--json"] + (["--catalog", catalog_url] if catalog_url else [])
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    made = json.loads(first.output)
    assert made["created"] is True and made["schema_revision"] == head_revision()
    assert made["backend"] == ("sqlite" if catalog_url is None else "postgresql")
    again = json.loads(runner.invoke(app, args).output)
    assert again["created"] is False and again["images"] == 0
    assert (ws / "catalog.sqlite").exists() == (catalog_url is None)
    from support.images import write_digits

    digits = write_digits(tmp_path / "digits", per_class=5, classes=3, size=8)
    assert runner.invoke(app, ["import", str(digits), "-w", str(ws)]).exit_code == 0
    out = runner.invoke(app, ["status", "-w", str(ws), "--json"])
    status = json.loads(out.output)
    assert status["images"] == 15 and status["classes"] == ["0", "1", "2"]
    assert status["catalog"] == made["catalog"]
    reimport = api.import_images(digits, workspace=ws)
    assert (reimport.added, reimport.already_present) == (0, 15)
    if catalog_url is not None:
        other = runner.invoke(app, ["init", str(ws), "--catalog", "sqlite:///" + str(tmp_path / "other.sqlite")])
        assert other.exit_code == 2 and "already keeps its catalog in" in other.output


def test_a_url_that_is_not_sqlite_or_postgres_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SQLite or PostgreSQL, not 'mysql'"):
        api.init_workspace(workspace=tmp_path / "ws", catalog="mysql://u:secret@host/db")
    with pytest.raises(ConfigError, match="not a catalog URL"):
        api.init_workspace(workspace=tmp_path / "ws", catalog="not a url")
    result = CliRunner().invoke(build_app(), ["init", str(tmp_path / "w2"), "--catalog", "mysql://u:secret@h/db"])
    assert result.exit_code == 2 and "secret" not in result.output and "***" in result.output


@pytest.fixture
def password_db(postgres: Server | None) -> object:
    require(postgres is not None, NOT_AVAILABLE)
    assert postgres is not None
    require(postgres.throwaway, "the password test needs the throwaway cluster (its password-only role)")
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}"))
        conn.execute(text(f"CREATE ROLE {PASSWORD_ROLE} LOGIN CREATEDB PASSWORD 'pw-Secret-42'"))
    with fresh_database(postgres.url) as url:
        with admin.connect() as conn:
            name = make_url(url).database
            conn.execute(text(f'ALTER DATABASE "{name}" OWNER TO {PASSWORD_ROLE}'))
        yield make_url(url).set(username=PASSWORD_ROLE)
    admin.dispose()


def test_the_password_is_never_stored_nor_shown(
    tmp_path: Path, password_db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = password_db.set(password="pw-Secret-42")  # type: ignore[attr-defined]
    for var in ("PGPASSWORD", "PICSIFT_CATALOG_PASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass
    ws = tmp_path / "ws"
    runner = CliRunner()
    made = runner.invoke(build_app(), ["init", str(ws), "--catalog", url.render_as_string(hide_password=False)])
    assert made.exit_code == 0, made.output
    assert "pw-Secret-42" not in made.output and "***" in made.output
    assert "pw-Secret-42" not in (ws / "workspace.json").read_text()
    denied = runner.invoke(build_app(), ["status", "-w", str(ws)])
    assert denied.exit_code == 2
    assert "PGPASSWORD, ~/.pgpass or $PICSIFT_CATALOG_PASSWORD" in denied.output
    assert "pw-Secret-42" not in denied.output
    monkeypatch.setenv("PICSIFT_CATALOG_PASSWORD", "pw-Secret-42")
    shown = runner.invoke(build_app(), ["status", "-w", str(ws)])
    assert shown.exit_code == 0 and "pw-Secret-42" not in shown.output
    monkeypatch.delenv("PICSIFT_CATALOG_PASSWORD")
    monkeypatch.setenv("PGPASSWORD", "pw-Secret-42")
    assert runner.invoke(build_app(), ["status", "-w", str(ws)]).exit_code == 0
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"*:*:*:{PASSWORD_ROLE}:pw-Secret-42\n")
    pgpass.chmod(0o600)
    assert runner.invoke(build_app(), ["status", "-w", str(ws)]).exit_code == 0
    assert "pw-Secret-42" not in repr(Workspace.open(ws))


def test_concurrent_labelling_and_feedback_lose_no_write(tmp_path: Path, catalog_url: str | None) -> None:
    """Four label writers (each its own connection pool, as separate app processes would be) race over the same
    images with the versions they read, while the server stores feedback and a reviewer accepts it: every write
    acknowledged is in the catalog, every refused one was reported as a conflict."""
    base = make_workspace(tmp_path, per_class=4, labelled_per_class=0, db_url=catalog_url)
    ids = [r.id for r in base.catalog.images()]
    base.close()
    writers, rounds = 4, 6
    applied: list[tuple[int, str, int]] = []
    conflicts: list[int] = []
    errors: list[BaseException] = []
    feedback_ids: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(writers + 1)

    def label_writer(n: int) -> None:
        ws = Workspace.open(tmp_path / "ws", db_url=catalog_url)
        try:
            start.wait()
            for r in range(rounds):
                seen = {i: ws.catalog.image(i).label_version for i in ids}
                out = set_labels(ws.catalog, ids, f"class-{n}-{r}", annotator=f"writer{n}", expected_versions=seen)
                with lock:
                    applied.extend((a["image_id"], a["label"], a["version"]) for a in out.applied)
                    conflicts.extend(c["image_id"] for c in out.conflicts)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            ws.close()

    def feedback_writer() -> None:
        ws = Workspace.open(tmp_path / "ws", db_url=catalog_url)
        try:
            store = FeedbackStore(ws)
            start.wait()
            for k in range(8):
                item = store.add(f"fb-{k % 2}", image=png_bytes(k), comment=f"c{k}")
                feedback_ids.append(item.id)
                if k % 2 == 0:
                    store.accept([item.id], reviewer="rev")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            ws.close()

    threads = [threading.Thread(target=label_writer, args=(n,)) for n in range(writers)]
    threads.append(threading.Thread(target=feedback_writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    ws = Workspace.open(tmp_path / "ws", db_url=catalog_url)
    c = ws.catalog
    assert len(applied) + len(conflicts) == writers * rounds * len(ids)
    assert conflicts, "racing writers with stale versions must have met conflicts"
    for image_id in ids:
        mine = sorted((v, label) for i, label, v in applied if i == image_id)
        versions = [v for v, _ in mine]
        assert versions == list(range(1, len(mine) + 1))  # each acknowledged write got its own version
        row = c.image(image_id)
        assert (row.label_version, row.label) == mine[-1]  # the last acknowledged write is the label
        history = [h for h in c.label_history(image_id) if h["origin"] == "manual"]
        assert [h["label"] for h in history] == [label for _, label in mine]  # none lost, in order
        assert sum(h["status"] == "accepted" for h in c.label_history(image_id)) == 1
    store = FeedbackStore(ws)
    assert sorted(f.id for f in store.items()) == sorted(feedback_ids) and len(feedback_ids) == 8
    assert len(store.items("accepted")) == 4 and len(store.items("pending")) == 4
    assert {label for _, label, _ in applied} | {"fb-0"} <= set(c.classes())  # every class written was declared
    ws.close()


def test_commands_opening_a_new_catalog_at_once_migrate_it_once(tmp_path: Path, catalog_url: str | None) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def opener() -> None:
        try:
            ws = Workspace.open(tmp_path / "ws", create=True, db_url=catalog_url)
            start.wait()
            ws.catalog.count()  # the first use opens the catalog: all six at once find it new
            ws.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    ws = Workspace.open(tmp_path / "ws")
    with ws.catalog.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM meta WHERE key = 'schema_version'")).scalar() == 1
    ws.close()
