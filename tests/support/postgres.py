"""A PostgreSQL server of the tests' own: initdb in a temporary folder, the server on a free loopback
port, TCP only (no Unix socket), stopped and removed at the end.

The binaries come from the ``pgserver`` wheel (a dev dependency: PostgreSQL's own initdb and
postgres, nothing installed system-wide, no service started), or else from Debian's
``postgresql-NN`` package folder. Only the binaries are used, never a server that happens to run on
the machine: the port is one the kernel hands out as free, and the server is trusted once this
process's child is seen holding it. PostgreSQL refuses to run as root, so under root the server
runs as ``nobody`` in a folder of its own.

Also the pytest fixtures of the findings-store tests: ``postgres_server`` (one per session) and
``database_url`` (an empty database, once on SQLite and once on PostgreSQL). Test modules import
them by name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from stack.ports import free_port, owns_listener

UNPRIVILEGED = 65534  # nobody: the user the server runs as when the tests run as root
SUPERUSER = "postgres"
_SYSTEM_PORT = 5432  # a machine's own PostgreSQL: never this one


def binaries() -> Path:
    """The folder holding ``initdb`` and ``postgres``: the pgserver wheel's, else Debian's newest."""
    spec = importlib.util.find_spec("pgserver")  # located, not imported: its import does work of its own
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    raise RuntimeError("no PostgreSQL binaries: install the dev dependencies (`pip install -e '.[dev]'`, "
                       "which bring the pgserver wheel)")


def reachable_by_others(path: Path) -> bool:
    """Whether a user who is neither the owner nor in the group can reach and run ``path``."""
    for folder in path.resolve().parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IXOTH)


class PostgresServer:
    """``durable=False`` (the tests) turns fsync off: fast, and a crash loses the data, which a test
    does not keep anyway. The benchmarks keep it on."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bin = binaries()
        self.root: Path | None = None
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    # -- running as an unprivileged user when we are root ------------------------------------------

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        if self._as_root:
            return subprocess.run(argv, user=UNPRIVILEGED, group=UNPRIVILEGED, extra_groups=[], check=False,
                                  capture_output=True)
        return subprocess.run(argv, check=False, capture_output=True)

    def _popen(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            if self._as_root:
                return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, user=UNPRIVILEGED,
                                        group=UNPRIVILEGED, extra_groups=[], start_new_session=True)
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    # -- life cycle --------------------------------------------------------------------------------

    @property
    def data(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def log(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "postgres.log"

    def start(self) -> PostgresServer:
        # A folder of its own under the system's temporary folder: the test's tmp_path is root's
        # alone (0700), which an unprivileged server could not enter.
        self.root = Path(tempfile.mkdtemp(prefix="certus-pg-"))
        if self._as_root:
            os.chown(self.root, UNPRIVILEGED, UNPRIVILEGED)
            if not reachable_by_others(self.bin / "postgres"):
                self.bin = self._copy_binaries()
        done = self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                          "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        if done.returncode != 0:
            self._remove()
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")
        for _attempt in range(3):  # a port taken between free_port() and the bind: another one
            self.port = free_port()
            if self.port == _SYSTEM_PORT:
                continue
            if self._launch():
                return self
        self._remove()
        raise RuntimeError(f"PostgreSQL did not start; its log:\n{self._log_tail()}")

    def _copy_binaries(self) -> Path:
        """The binaries copied where the unprivileged user can run them (a checkout under a folder
        only root may enter, such as /root, holds them out of its reach). PostgreSQL finds its
        ``lib`` and ``share`` beside ``bin``; the wheel's programs find their shared libraries in
        ``pgserver.libs`` three levels up from ``bin`` (their RPATH), so that layout is kept."""
        assert self.root is not None
        install = self.bin.parent  # .../pgserver/pginstall
        site = install.parent.parent
        target = self.root / "binaries" / install.relative_to(site)
        (target / "bin").mkdir(parents=True)
        for name in ("initdb", "postgres"):
            shutil.copy2(install / "bin" / name, target / "bin" / name)
        for folder in ("lib", "share"):
            if (install / folder).exists():
                shutil.copytree(install / folder, target / folder, symlinks=True)
        libs = site / f"{install.parent.name}.libs"
        if libs.exists():
            shutil.copytree(libs, self.root / "binaries" / libs.name, symlinks=True)
        for path in (self.root / "binaries", *(self.root / "binaries").rglob("*")):
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
        return target / "bin"

    def _launch(self) -> bool:
        settings = {"listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": "",
                    "max_connections": "200", "log_min_messages": "warning"}
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self.proc = self._popen(argv, self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    pass
            except psycopg.OperationalError:
                time.sleep(0.05)
                continue
            if not owns_listener(self.proc.pid, self.port):
                self.stop(remove=False)
                return False
            return True
        self.stop(remove=False)
        return False

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self, *, remove: bool = True) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, checkpoints, exits
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if remove:
            self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (for psycopg)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (the service's ``DATABASE_URL`` form)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new database (empty, or a copy of ``template``); returns its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- pytest fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in the test's folder, or a new database on the tests' own
    PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'certus.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    try:
        yield url
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop_database(url.rsplit("/", 1)[1])
