"""Alembic's entry point for the findings store: always run by ``tasks.db.migrate`` with an open
connection (inside its transaction and lock), or with a URL for offline SQL (``--sql``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tasks.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run the migrations with `python -m tasks.db upgrade` (tasks.db.migrate)")
    _run(connection)
