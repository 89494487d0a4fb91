"""``python -m tasks.db upgrade [REVISION] | downgrade REVISION | current | heads``: the database
named by ``CERTUS_ASSURANCE_DATABASE_URL`` (default: the SQLite file under ``var/``)."""

from __future__ import annotations

import argparse
import sys

from tasks.db.engine import display_url
from tasks.db.migrate import current, downgrade, head, upgrade
from tasks.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.db", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="apply the migrations up to REVISION (default: the newest)")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="revert the migrations down to REVISION (`base`: all)")
    down.add_argument("revision")
    sub.add_parser("current", help="print the revision the database is at")
    sub.add_parser("heads", help="print the newest revision this code ships")
    args = parser.parse_args(argv)
    if args.command == "heads":
        print(head())
        return 0
    settings = Settings.from_env()
    where = display_url(settings.database_url)
    if args.command == "upgrade":
        print(f"{where}: at {upgrade(settings, args.revision)}")
    elif args.command == "downgrade":
        print(f"{where}: at {downgrade(settings, args.revision) or 'base'}")
    else:
        revision = current(settings)
        latest = head()
        note = " (head)" if revision == latest else f" (newest is {latest}: run `python -m tasks.db upgrade`)"
        print(f"{where}: at {revision or 'nothing (empty database)'}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
