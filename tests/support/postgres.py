"""The findings-store tests' PostgreSQL (``stack/postgres_server.py``, one per session, on a
temporary folder) and their fixtures: ``postgres_server`` and ``database_url`` (an empty
database, once on SQLite and once on PostgreSQL). Test modules import them by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stack.postgres_server import UNPRIVILEGED, PostgresServer, binaries, reachable_by_others

__all__ = ["UNPRIVILEGED", "PostgresServer", "binaries", "database_url", "postgres_server", "reachable_by_others"]


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
