"""The findings database: its URL and SQLite settings, the migrations (from empty, down and up again,
several processes at once, the command line), on SQLite and on the tests' own PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from tasks.db import current, downgrade, head, make_engine, normalise_url, upgrade
from tasks.db.models import Base
from tasks.settings import Settings, SettingsError
from tests.support.postgres import UNPRIVILEGED, PostgresServer

# database_url (SQLite and PostgreSQL) and postgres_server
pytest_plugins = ["tests.support.postgres"]

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"scans", "findings", "finding_sources", "scan_findings", "triage_events"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_the_default_database_is_a_sqlite_file_under_var(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/var/certus.db"
    given = Settings.from_env({"CERTUS_ASSURANCE_DATABASE_URL": "sqlite:///data/x.db?timeout=5"})
    assert given.database_url == f"sqlite:///{tmp_path.resolve()}/data/x.db?timeout=5"
    pg = "postgresql://certus:secret@db.internal:5432/certus"
    assert Settings.from_env({"CERTUS_ASSURANCE_DATABASE_URL": pg}).database_url == pg
    assert "secret" not in repr(Settings.from_env({"CERTUS_ASSURANCE_DATABASE_URL": pg}))
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        Settings.from_env({"CERTUS_ASSURANCE_DATABASE_URL": "mysql://x/y"})


def test_postgresql_urls_use_psycopg_3():
    assert normalise_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg2://u@h/d").drivername == "postgresql+psycopg"


def test_a_sqlite_database_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/sub/dir/certus.db")  # the folder is created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()
    assert (tmp_path / "sub/dir/certus.db").exists()


def test_upgrade_from_empty_creates_the_schema_the_models_describe(database_url):
    assert current(database_url) is None
    assert upgrade(database_url) == head()
    assert current(database_url) == head()
    assert _tables(database_url) == TABLES
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                           Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
    assert upgrade(database_url) == head()  # a second upgrade changes nothing


def test_downgrade_to_base_and_upgrade_again(database_url):
    upgrade(database_url)
    assert downgrade(database_url, "base") is None
    assert _tables(database_url) == set()
    assert upgrade(database_url) == head()
    assert _tables(database_url) == TABLES


def test_upgrade_from_a_settings_object(tmp_path):
    settings = Settings.from_env({"CERTUS_ASSURANCE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"})
    assert upgrade(settings) == head()
    assert current(settings) == head()


def test_several_processes_upgrading_at_once_all_succeed_and_migrate_once(database_url):
    # Each process waits for the same instant, then upgrades: without the lock the second CREATE
    # TABLE of one of them fails (or, on SQLite, the version table is written twice).
    start_at = time.time() + 2.0
    code = ("import sys, time; from tasks.db import upgrade; time.sleep(max(0, float(sys.argv[2]) - time.time())); "
            "print(upgrade(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, database_url, str(start_at)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _out, err in results]
    assert {out.strip() for out, _err in results} == {head()}
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()
    assert _tables(database_url) == TABLES


def test_the_command_line_upgrades_and_reports_the_revision(database_url):
    env = {**os.environ, "CERTUS_ASSURANCE_DATABASE_URL": database_url}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "tasks.db", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "empty database" in run("current")
    assert f"at {head()}" in run("upgrade")
    assert f"at {head()} (head)" in run("current")
    assert run("heads").strip() == head()


def test_the_command_line_never_prints_the_password(tmp_path):
    env = {**os.environ, "CERTUS_ASSURANCE_DATABASE_URL": "postgresql://certus:hunter2@127.0.0.1:1/certus"}
    done = subprocess.run([sys.executable, "-m", "tasks.db", "current"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0  # nothing listens on port 1
    assert "hunter2" not in done.stdout + done.stderr


def test_the_migrations_ship_inside_the_package():
    from tasks.db.migrate import MIGRATIONS

    assert MIGRATIONS.is_relative_to(ROOT / "tasks" / "db")
    assert (MIGRATIONS / "env.py").exists() and list((MIGRATIONS / "versions").glob("0001_*.py"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"migrations/*.py"' in pyproject and '"migrations/versions/*.py"' in pyproject


def test_the_tests_postgresql_is_their_own(postgres_server):
    from stack.ports import owns_listener

    server = postgres_server
    assert server.port != 5432
    assert server.proc is not None and owns_listener(server.proc.pid, server.port)
    if os.geteuid() == 0:
        assert os.stat(server.data).st_uid == UNPRIVILEGED
    engine = make_engine(server.url())
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            assert conn.execute(text("SHOW port")).scalar() == str(server.port)
            assert conn.execute(text("SHOW data_directory")).scalar() == str(server.data)
    finally:
        engine.dispose()


def test_a_second_server_starts_beside_the_first_and_stops_cleanly(postgres_server):
    with PostgresServer() as other:
        assert other.port != postgres_server.port
        root = other.root
        assert root is not None and root.exists()
    assert not root.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_binaries_the_unprivileged_user_cannot_reach_are_copied_where_it_can(tmp_path):
    # A checkout under a folder only root may enter (tmp_path is one: 0700) holds the wheel's
    # binaries out of the server user's reach.
    from tests.support.postgres import binaries, reachable_by_others

    install = binaries().parent
    site = install.parent.parent
    hidden = tmp_path / "site"
    shutil.copytree(install.parent, hidden / install.parent.name, symlinks=True)
    libs = site / f"{install.parent.name}.libs"
    if libs.exists():
        shutil.copytree(libs, hidden / libs.name, symlinks=True)
    server = PostgresServer()
    server.bin = hidden / install.relative_to(site) / "bin"
    assert not reachable_by_others(server.bin / "postgres")
    with server:
        assert server.bin.is_relative_to(server.root)
        engine = make_engine(server.url())
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()
