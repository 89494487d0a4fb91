"""osv: pinned dependencies from lock and requirements files matched against the local OSV
database (``workers.osv``). Writes ``reports/sca/osv.sarif.json``; the database's source and age
go into the SARIF run properties and the scan summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from workers import sarif
from workers.osv.database import dumps
from workers.scanners.base import Finding, Scanner, ToolContext, ToolOutput, read_json_report
from workers.toolrun import ProcessResult

VERSION = "1.0"
REPORT_PATH = "reports/sca/osv.sarif.json"


class Osv(Scanner):
    id = "osv"

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path

    def unavailable_reason(self) -> str | None:
        if not dumps(Path(self.db_path)):
            return (f"the OSV database at {self.db_path} has no dumps; "
                    "run `python -m workers.osv refresh` (or `import`)")
        return None

    def version(self) -> str:
        return VERSION

    def command(self, ctx: ToolContext) -> list[str]:
        # -I: the scanned tree is the working folder and must not shadow our own modules.
        return [sys.executable, "-I", "-m", "workers.osv", "--db", self.db_path, "scan", ".",
                "--out", str(ctx.out_dir / "osv.json")]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        report = read_json_report("osv", ctx.out_dir / "osv.json", result)
        findings = [_finding(v) for v in report.get("vulnerabilities", [])]
        database = report.get("database", {})
        doc = sarif.build(self.id, VERSION, findings, information_uri="https://osv.dev")
        doc["runs"][0]["properties"] = {
            "osvDatabase": database,
            "lockFiles": report.get("lock_files", []),
            "pinnedDependencies": report.get("dependencies", 0),
            "unpinnedRequirements": report.get("unpinned", []),
            "parseErrors": report.get("parse_errors", []),
            "ecosystemsWithoutData": report.get("ecosystems_without_data", []),
        }
        details = {
            "database": {"path": database.get("path"), "age_days": database.get("age_days"),
                         "ecosystems": {eco: {k: meta.get(k) for k in ("advisories", "newest_advisory_modified",
                                                                        "age_days", "source", "fetched_at")}
                                        for eco, meta in (database.get("ecosystems") or {}).items()}},
            "lock_files": report.get("lock_files", []),
            "pinned_dependencies": report.get("dependencies", 0),
            "unpinned_requirements": len(report.get("unpinned", [])),
            "ecosystems_without_data": report.get("ecosystems_without_data", []),
        }
        body = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        return ToolOutput(findings=findings, files={REPORT_PATH: body}, sarif=False, details=details)


def _finding(v: dict[str, Any]) -> Finding:
    aliases = [a for a in v.get("aliases", []) if a.startswith("CVE-")] or v.get("aliases", [])[:1]
    fixed = v.get("fixed") or []
    message = (f"{v['package']} {v['version']} ({v['ecosystem']}) is affected by {v['id']}"
               + (f" ({', '.join(aliases)})" if aliases else "")
               + (f": {v['summary']}" if v.get("summary") else "")
               + (f" Fixed in {', '.join(fixed)}." if fixed else " No fixed release is known."))
    props: dict[str, Any] = {"package": v["package"], "version": v["version"], "ecosystem": v["ecosystem"],
                             "aliases": v.get("aliases", []), "fixed_versions": fixed,
                             "severity_source": v.get("severity_source")}
    if v.get("severity_score") is not None:
        props["cvss_score"] = v["severity_score"]
        props["cvss_vector"] = v.get("severity_vector")
    return Finding(tool="osv", rule_id=v["id"], rule_name=f"{v['id']} in {v['package']}", message=message,
                   severity=v["severity"], path=v.get("path"), line=v.get("line"), snippet=v.get("snippet"),
                   help_uri=f"https://osv.dev/vulnerability/{v['id']}", properties=props)
