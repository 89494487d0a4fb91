"""``python -m workers.osv``: refresh, import, info, scan.

  refresh [--ecosystem PyPI ...]      download OSV's all.zip dumps into the database folder
  import ECOSYSTEM FILE               install a dump copied in by hand
  info                                the database's source, size and age
  scan SOURCE_DIR --out REPORT.json   match SOURCE_DIR's lock files (used by the osv scanner)

The database folder is CERTUS_ASSURANCE_OSV_DB_PATH (or --db).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tasks.settings import Settings
from workers.osv.database import Database, DatabaseError
from workers.osv.matcher import scan
from workers.osv.refresh import RefreshError, import_file, refresh


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m workers.osv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=settings.osv_db_path, help="database folder (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_refresh = sub.add_parser("refresh", help="download OSV's dumps")
    p_refresh.add_argument("--ecosystem", action="append", help="repeatable; default: the OSV_ECOSYSTEMS setting")
    p_refresh.add_argument("--source", default=settings.osv_source_url, help="dump server (default: %(default)s)")
    p_refresh.add_argument("--timeout", type=float, default=60.0)
    p_import = sub.add_parser("import", help="install a dump file copied in by hand")
    p_import.add_argument("ecosystem")
    p_import.add_argument("file", type=Path)
    sub.add_parser("info", help="source, size and age of the database")
    p_scan = sub.add_parser("scan", help="match a source tree's lock files")
    p_scan.add_argument("source", type=Path)
    p_scan.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    db = Path(args.db)
    try:
        if args.command == "refresh":
            done = refresh(db, args.ecosystem or list(settings.osv_ecosystems), args.source, args.timeout)
            print(json.dumps(done, indent=2, sort_keys=True))
        elif args.command == "import":
            print(json.dumps(import_file(db, args.ecosystem, args.file), indent=2, sort_keys=True))
        elif args.command == "info":
            print(json.dumps(Database.open(db).describe(), indent=2, sort_keys=True))
        else:
            report = scan(args.source, db)
            args.out.write_text(json.dumps(report, indent=2, sort_keys=True))
            info = report["database"]
            for eco, meta in sorted(info["ecosystems"].items()):
                print(f"database {eco}: {meta['advisories']} advisories, newest {meta['newest_advisory_modified']}, "
                      f"age {meta['age_days']} days, source {meta['source']}")
            print(f"lock files: {', '.join(report['lock_files']) or 'none'}; "
                  f"{report['dependencies']} pinned dependencies; "
                  f"{len(report['vulnerabilities'])} vulnerable")
    except (RefreshError, DatabaseError, OSError) as exc:
        print(f"osv {args.command} failed: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
