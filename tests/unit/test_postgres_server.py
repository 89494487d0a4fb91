"""The embedded PostgreSQL of ``make cluster`` (stack/postgres_server.py): a password for every
connection, its data kept in its folder across a restart, and a stand-in folder the server's user can
reach when the cluster's folder lies where only root may enter."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import psycopg
import pytest

from stack.postgres_server import PostgresServer


def test_a_password_is_required_and_the_data_stays_across_a_restart(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(24)
    server = PostgresServer(tmp_path / "postgres", durable=True, password=password).start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        without = server.dsn().replace(f" password={password}", "")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(without, connect_timeout=5).close()
        port = server.port
        server.stop()
        server.start()  # as the supervisor restarts it: the same port, the same data
        assert server.port == port
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)
        assert server.url().startswith("postgresql://postgres:") and password in server.url()
    finally:
        server.stop()
    assert server.root is None
    where = tmp_path / "postgres" / "WHERE"
    if os.geteuid() == 0:  # tmp_path is root's alone: the data went to a stand-in the server can reach
        stand_in = Path(where.read_text().rsplit(" ", 1)[1].strip())
        assert stand_in.is_dir() and stand_in.name.startswith("certus-pg-")
        shutil.rmtree(stand_in)
