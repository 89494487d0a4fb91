"""The one way the service opens its database: URL rules, SQLite's pragmas, and write transactions.

PostgreSQL URLs use psycopg 3 whatever driver they name (``postgresql://`` alone would mean
psycopg2, which the service does not install). A SQLite file gets WAL (readers never wait for the
writer), a busy timeout (a second writer waits instead of failing at once), foreign keys (off by
default in SQLite) and ``synchronous=NORMAL`` (safe with WAL: a power cut may lose the last
transactions, never the file). SQLite transactions are started by us, not by the ``sqlite3``
module, so that DDL runs inside them too and a writer can take the write lock up front
(``BEGIN IMMEDIATE``, see ``write_connection``): a reader that later wants to write would otherwise
fail at once, without waiting, when another writer went first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

# Milliseconds a SQLite writer waits for another to finish before it gives up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "certus_write"


def normalise_url(url: str | URL) -> URL:
    """The URL with psycopg 3 as the PostgreSQL driver and a relative SQLite path made absolute."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str(Path(database).expanduser().resolve()))
        return parsed
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def display_url(url: str | URL) -> str:
    """The URL for logs and messages: never its password."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see the module's doc). A SQLite file's folder is created."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that will write: committed when the block ends, rolled back
    on an exception. On SQLite it holds the write lock from its first statement."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction (one consistent snapshot for the block)."""
    with engine.connect() as conn, conn.begin():
        yield conn
