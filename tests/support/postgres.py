"""The findings-store tests' PostgreSQL (``stack/postgres_server.py``, one per session, on a
temporary folder) and their fixtures: ``postgres_server``, ``database_url`` (an empty database,
once on SQLite and once on PostgreSQL), ``clock`` (a ``Clock`` a test moves by hand, at ``T0``
unless a module overrides the fixture) and ``store`` (a ``FindingsStore`` on ``database_url``,
migrated, reading that clock). Test modules import them by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from stack.postgres_server import UNPRIVILEGED, PostgresServer, binaries, reachable_by_others
from tasks.db import make_engine, upgrade
from tasks.findings_store import FindingsStore

__all__ = ["T0", "UNPRIVILEGED", "Clock", "PostgresServer", "binaries", "clock", "database_url", "postgres_server",
           "reachable_by_others", "store"]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The findings store's clock, moved by the test."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


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


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(database_url: str, clock: Clock) -> Iterator[FindingsStore]:
    upgrade(database_url)
    found = FindingsStore(make_engine(database_url), clock)
    try:
        yield found
    finally:
        found.close()
