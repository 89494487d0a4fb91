"""A PostgreSQL server of the service's own: initdb in a folder, the server on a loopback port, TCP
only (no Unix socket). ``make cluster`` runs one for the findings store (data kept in its folder,
a password in a private file); the tests run one each session (a temporary folder, removed).

The binaries come from the ``pgserver`` wheel (installed with the development dependencies:
PostgreSQL's own initdb and postgres, nothing installed system-wide, no service started), or else
from Debian's ``postgresql-NN`` package folder. Only the binaries are used, never a server that
happens to run on the machine: the port is one the kernel hands out as free, and the server is
trusted once this process's child is seen holding it. PostgreSQL refuses to run as root, so under
root the server runs as ``nobody`` in a folder of its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from stack.ports import free_port, owns_listener

# The file (in the cluster's folder, mode 0600) holding the embedded server's superuser password.
POSTGRES_PASSWORD_FILE = "postgres-password"  # noqa: S105 - a file name
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
    does not keep anyway. ``make cluster`` and the benchmarks keep it on.

    ``folder``: where the data lives and stays between starts (``make cluster``); none, a new
    temporary folder removed at ``stop`` (the tests). ``password``: the superuser's password
    (scram-sha-256 for every connection); none, connections on loopback are trusted (the tests).
    ``port``: the port to take again (a restart); none, a free one."""

    def __init__(self, folder: Path | None = None, *, durable: bool = False, password: str | None = None,
                 port: int | None = None) -> None:
        self.durable = durable
        self.bin = binaries()
        self.folder = folder
        self.password = password
        self.root: Path | None = None
        self.port = port or 0
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
        self.root = self._folder()
        if self._as_root and not reachable_by_others(self.bin / "postgres"):
            self.bin = self._copy_binaries()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        wanted = self.port
        for _attempt in range(3):  # a port taken between free_port() and the bind: another one
            self.port = wanted or free_port()
            if self.port == _SYSTEM_PORT:
                continue
            if self._launch():
                return self
            if wanted:
                break
        if self.folder is None:
            self._remove()
        raise RuntimeError(f"PostgreSQL did not start; its log:\n{self._log_tail()}")

    def _folder(self) -> Path:
        """The server's folder, which its unprivileged user must be able to reach: a test's own
        tmp_path is root's alone (0700), so the tests take a new folder under the system's
        temporary folder."""
        if self.folder is None:
            root = Path(tempfile.mkdtemp(prefix="certus-pg-"))
        else:
            root = self.folder.resolve()
            root.mkdir(parents=True, exist_ok=True)
            root.chmod(0o700)
            if self._as_root and not reachable_by_others(root.parent):
                root = self._reachable_stand_in(root)
        if self._as_root:
            os.chown(root, UNPRIVILEGED, UNPRIVILEGED)
        return root

    @staticmethod
    def _reachable_stand_in(folder: Path) -> Path:
        """A folder the server's user can reach, standing in for ``folder`` (which lies under one
        only root may enter, such as /root): named after it under the system's temporary folder,
        so the data stays between starts. One that exists must be a real folder of that user."""
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        stand_in = Path(tempfile.gettempdir()) / f"certus-pg-{digest}"
        try:
            stand_in.mkdir(mode=0o700)
        except FileExistsError:
            st = os.lstat(stand_in)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (UNPRIVILEGED, 0):
                raise RuntimeError(f"{stand_in} exists and is not this server's folder") from None
        (folder / "WHERE").write_text(f"the PostgreSQL data of this folder lives in {stand_in}\n")
        return stand_in

    def _initdb(self) -> None:
        argv = [str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--encoding=UTF8", "--locale=C",
                "--no-instructions"]
        if not self.durable:
            argv.append("--no-sync")
        pwfile = None
        if self.password is not None:
            assert self.root is not None
            pwfile = self.root / ".pwfile"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if self._as_root:
                os.chown(pwfile, UNPRIVILEGED, UNPRIVILEGED)
            argv += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            argv.append("--auth=trust")
        try:
            done = self._run(argv)
        finally:
            if pwfile is not None:
                pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            if self.folder is None:
                self._remove()
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

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
        if self.root is not None and self.folder is None:  # a folder it was given keeps its data
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (for psycopg)."""
        secret = f" password={self.password}" if self.password else ""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}{secret}"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (the service's ``DATABASE_URL`` form)."""
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

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
