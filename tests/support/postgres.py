"""A PostgreSQL server for tests and benchmarks: $PICSIFT_POSTGRES_URL, else a throwaway cluster started with the
machine's `initdb`/`pg_ctl` in a temporary folder (unix socket only, no TCP), else None.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` OS user (`runuser -u postgres`)
in a folder it owns. Each test gets a database of its own (`fresh_database`), dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

CATALOGS = ["sqlite", "postgresql"]  # the catalog back ends a test may run on (conftest's catalog_url, ws)
URL_ENV = "PICSIFT_POSTGRES_URL"
BINDIRS_ENV = "PICSIFT_POSTGRES_BINDIRS"
PASSWORD_ROLE = "picsift_pw"  # in a throwaway cluster, the one role that must log in with a password
_PORT = 5432  # only names the socket file inside the cluster's own folder (no TCP listener)


def find_bin(name: str) -> str | None:
    """`name` (initdb, pg_ctl) from PATH, else from the newest of $PICSIFT_POSTGRES_BINDIRS (a glob; default
    Debian's /usr/lib/postgresql/*/bin, which is not on PATH; empty: PATH only); None when absent."""
    found = shutil.which(name)
    if found:
        return found
    pattern = os.environ.get(BINDIRS_ENV, "/usr/lib/postgresql/*/bin")
    candidates = sorted(glob.glob(os.path.join(pattern, name))) if pattern else []
    return candidates[-1] if candidates else None


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


class Cluster:
    """A running throwaway cluster: `url` (as its superuser, over the unix socket) and `stop()`."""

    def __init__(self, folder: Path, owner: str | None, pg_ctl: str) -> None:
        self.folder, self.owner, self.pg_ctl = folder, owner, pg_ctl
        user = owner or _current_user()
        self.url = f"postgresql+psycopg://{user}@/postgres?host={folder}&port={_PORT}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        subprocess.run(
            _as_owner([self.pg_ctl, "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"], self.owner),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _current_user() -> str:
    import getpass

    return getpass.getuser()


def start_cluster(durable: bool = False) -> Cluster | None:
    """initdb + pg_ctl start in a new temporary folder; None when the PostgreSQL server tools are not installed.

    Durability is off (fsync, full page writes, synchronous commit) unless `durable` (benchmarks): the cluster
    lives for one test session. RuntimeError with the server's log when it does not start.
    """
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        return None
    owner = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="picsift-pg-"))
    folder.chmod(0o755)
    if owner:
        shutil.chown(folder, user=owner, group=owner)
    data = folder / "data"
    init = subprocess.run(
        _as_owner([initdb, "-D", str(data), "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], owner),
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    hba = data / "pg_hba.conf"  # one role must give a password (the password tests); every other one is trusted
    hba.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\n" + hba.read_text())
    settings = f"-c listen_addresses='' -c unix_socket_directories='{folder}' -p {_PORT} -c max_connections=200"
    if not durable:
        settings += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    start = subprocess.run(
        _as_owner([pg_ctl, "-D", str(data), "-o", settings, "-l", str(folder / "server.log"), "-w", "start"], owner),
        capture_output=True,
        text=True,
        check=False,
    )
    if start.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace") if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()} {log[-2000:]}")
    return Cluster(folder, owner, pg_ctl)


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server for tests: `url` of a user who may create databases; `throwaway` when it is a cluster
    started for this session (then the role PASSWORD_ROLE must log in with a password)."""

    url: str
    throwaway: bool


@contextmanager
def postgres_server() -> Iterator[Server | None]:
    """$PICSIFT_POSTGRES_URL, else a throwaway cluster for the duration of the block, else None (no server)."""
    given = os.environ.get(URL_ENV)
    if given:
        yield Server(given, throwaway=False)
        return
    cluster = start_cluster()
    if cluster is None:
        yield None
        return
    try:
        yield Server(cluster.url, throwaway=True)
    finally:
        cluster.stop()


NOT_AVAILABLE = (
    f"PostgreSQL not available: set {URL_ENV} to a server where the user may create databases, or install "
    "the PostgreSQL server (initdb, pg_ctl) for a throwaway cluster"
)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty UTF-8 database on the server at `server_url`, dropped (connections closed) afterwards; yields
    its URL."""
    name = f"picsift_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
