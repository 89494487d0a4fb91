"""The service's SQL database: history that outlives Redis (findings across scans, their triage).

``make_engine`` opens it (SQLite file by default, PostgreSQL in production); ``upgrade`` brings its
schema to the newest migration and is safe to call from several processes at once (every service
process calls it on start; ``python -m tasks.db upgrade`` does the same by hand).
"""

from tasks.db.engine import display_url, make_engine, normalise_url, read_connection, write_connection
from tasks.db.migrate import current, downgrade, head, upgrade

__all__ = ["current", "display_url", "downgrade", "head", "make_engine", "normalise_url", "read_connection",
           "upgrade", "write_connection"]
