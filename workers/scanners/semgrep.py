"""semgrep with the project's own rules (workers/scanners/rules/semgrep/*.yml), fully offline.

Only the rule files kept in this repository are used: never the public registry (its rules'
licence forbids use in a service), never ``--config auto``, metrics off, no version check. No
``.semgrepignore`` file (the repository's or semgrep's default list) and no ``.gitignore`` decides
which files are scanned, and ``nosemgrep`` comments are not honoured; what the repository tried is
reported (``suppressions.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

from workers.scanners import suppressions
from workers.scanners.base import Finding, Scanner, ToolContext, ToolOutput, read_json_report
from workers.scanners.toolenv import dist_version, executable, mask_literals, relative_path, source_line
from workers.toolrun import ProcessResult

RULES_DIR = Path(__file__).resolve().parent / "rules" / "semgrep"
_SEVERITIES = ("critical", "high", "medium", "low", "info")
# semgrep's own levels when a rule names no certus-severity.
_LEVEL = {"CRITICAL": "critical", "ERROR": "high", "HIGH": "high", "WARNING": "medium", "MEDIUM": "medium",
          "INFO": "low", "LOW": "low", "INVENTORY": "info", "EXPERIMENT": "info"}
# `nosem` / `nosemgrep` in any comment syntax, on the flagged line or the line above it.
NOSEM = re.compile(r"\bnosem(?:grep)?\b", re.IGNORECASE)
CONFIG_FILES = (suppressions.named(".semgrepignore"),)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


class Semgrep(Scanner):
    id = "semgrep"

    def unavailable_reason(self) -> str | None:
        if not executable("semgrep"):
            return "semgrep is not installed (make tools installs requirements/tools-sast.txt)"
        if not rule_files():
            return f"no semgrep rules in {RULES_DIR}"
        return None

    def version(self) -> str:
        exe = executable("semgrep")
        return dist_version(exe, "semgrep") if exe else "unknown"

    def command(self, ctx: ToolContext) -> list[str]:
        argv = [executable("semgrep") or "semgrep", "scan", "--metrics=off", "--disable-version-check",
                "--oss-only", "--no-git-ignore", "--x-ignore-semgrepignore-files", "--disable-nosem",
                "--no-rewrite-rule-ids",
                "--json", "--output", str(ctx.out_dir / "semgrep.json"),
                "--timeout", "30", "--jobs", "2", "--max-target-bytes", "2000000"]
        for rules in rule_files():
            argv += ["--config", str(rules)]
        return [*argv, "."]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        # 0: no findings, 1: findings (with --error only); 2+ are semgrep's own failures.
        data = read_json_report("semgrep", ctx.out_dir / "semgrep.json", result, ok_exit=(0, 1))
        findings = []
        for item in data.get("results", []):
            extra = item.get("extra") or {}
            meta = extra.get("metadata") or {}
            rule_id = str(item.get("check_id", "")).rsplit(".", 1)[-1]
            path = relative_path(ctx.source_dir, str(item.get("path", "")))
            start = item.get("start") or {}
            line = start.get("line")
            snippet = source_line(ctx.source_dir, path, line)
            if meta.get("category") == "credentials":
                snippet = mask_literals(snippet)
            sev = str(meta.get("certus-severity", "")).lower()
            if sev not in _SEVERITIES:
                sev = _LEVEL.get(str(extra.get("severity", "")).upper(), "medium")
            findings.append(Finding(
                tool=self.id,
                rule_id=rule_id,
                rule_name=rule_id,
                message=" ".join(str(extra.get("message", "")).split()),
                severity=sev,
                path=path,
                line=line,
                end_line=(item.get("end") or {}).get("line"),
                column=start.get("col"),
                snippet=snippet,
                properties={"cwe": meta.get("cwe"), "category": meta.get("category")},
            ))
        errors = [e for e in data.get("errors", []) if str(e.get("level", "")).lower() == "error"]
        notes = [f"semgrep: {e.get('type', 'error')} in {e.get('path', '?')}" for e in errors[:20]]
        suppressions.mark(findings, ctx.source_dir, NOSEM, before=True)
        found = suppressions.Suppressions(self.id, "nosemgrep",
                                          config_files=suppressions.config_files(ctx.source_dir, *CONFIG_FILES))
        scanned = [p for p in (relative_path(ctx.source_dir, str(s)) for s in (data.get("paths") or {}).get(
            "scanned") or []) if p]
        for path, count in suppressions.count_comments(ctx.source_dir, scanned, NOSEM).items():
            found.add_inline(path, count)
        return found.apply(ToolOutput(findings=findings, notes=notes))
