"""Schema migrations (Alembic, shipped inside this package): upgrade, downgrade, current revision.

Every process of the service upgrades on start, so several may do it at once. Each upgrade runs in
one transaction that first takes a lock the others wait for: on PostgreSQL a transaction-scoped
advisory lock, on SQLite the database file's write lock (``BEGIN IMMEDIATE``). The one that waited
then reads the version table afresh, finds it at head and does nothing. PostgreSQL and SQLite both
run DDL inside a transaction, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from tasks.db.engine import display_url, make_engine, write_connection
from tasks.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of the migrations (any fixed 64-bit number; this one spells "certusdb").
ADVISORY_LOCK_KEY = 0x6365727475736462

Target = Settings | str | URL | Engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision this code ships."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships its migrations
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return revision


@contextmanager
def _engine(target: Target) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target.database_url if isinstance(target, Settings) else target)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    with write_connection(engine) as conn:  # SQLite: BEGIN IMMEDIATE, the file's write lock
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        yield conn


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(target: Target, revision: str = "head") -> str | None:
    """Bring the database to ``revision`` (the newest by default); returns the revision it is at."""
    with _engine(target) as engine, _locked(engine) as conn:
        before = _revision(conn)
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        after = _revision(conn)
        if after != before:
            log.info("database %s upgraded from %s to %s", display_url(engine.url), before, after)
        return after


def downgrade(target: Target, revision: str) -> str | None:
    """Take the database back to ``revision`` (``base``: no tables of the store left)."""
    with _engine(target) as engine, _locked(engine) as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        return _revision(conn)


def current(target: Target) -> str | None:
    """The revision the database is at (None: never upgraded)."""
    with _engine(target) as engine, engine.connect() as conn:
        return _revision(conn)
