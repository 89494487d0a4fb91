"""zizmor: GitHub Actions workflow and action audits (template injection, dangerous triggers,
unpinned actions, excessive permissions...), run with ``--offline``; SARIF converted to findings.

A repository's ``zizmor.yml`` is not read (``--no-config``), its ``# zizmor: ignore[...]`` comments
are not honoured (``--no-ignores``) and its ``.gitignore`` does not hide workflows
(``--collect=all``); what the repository tried is reported (``suppressions.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from workers.scanners import suppressions
from workers.scanners.base import Finding, ToolContext, ToolFailed, ToolOutput
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sarif_input import findings_from_sarif
from workers.scanners.sourcefiles import walk
from workers.toolrun import ProcessResult

SEVERITY = {"high": "high", "medium": "medium", "low": "low", "informational": "info", "unknown": "low"}
IGNORE_COMMENT = re.compile(r"#\s*zizmor\s*:\s*ignore\b", re.IGNORECASE)
CONFIG_FILES = (suppressions.named("zizmor.yml", "zizmor.yaml", ".zizmor.yml", ".zizmor.yaml"),)


def is_github_input(path: Path) -> bool:
    parts = path.parts
    if path.suffix in (".yml", ".yaml") and len(parts) >= 3 and parts[-3:-1] == (".github", "workflows"):
        return True
    return path.name in ("action.yml", "action.yaml", "dependabot.yml", "dependabot.yaml")


def _severity(result: dict[str, Any], rule: dict[str, Any]) -> str:
    raw = str((result.get("properties") or {}).get("zizmor/severity", "")).lower()
    if raw in SEVERITY:
        return SEVERITY[raw]
    return {"error": "high", "warning": "medium", "note": "low"}.get(str(result.get("level")), "low")


class Zizmor(PinnedCli):
    id = "zizmor"
    env = "deps"
    program = "zizmor"
    report_on_stdout = True

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "zizmor"
        targets = walk(ctx.source_dir, is_github_input)
        (ctx.out_dir / "targets.json").write_text(json.dumps(targets))
        if not targets:
            return [exe, "--version"]  # zizmor refuses a tree with nothing to audit
        # --no-config: a repository's zizmor.yml does not decide what is found; --no-ignores: nor do
        # its ignore comments; --collect=all: nor its .gitignore.
        return [exe, "--offline", "--no-config", "--no-ignores", "--collect=all", "--no-exit-codes", "--no-progress",
                "--format", "sarif", "."]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        targets = json.loads((ctx.out_dir / "targets.json").read_text())
        if result.exit_code != 0:
            raise ToolFailed(f"zizmor exited {result.exit_code}: {result.stderr_tail[-300:]}")
        found = suppressions.Suppressions(self.id, "# zizmor: ignore[...]",
                                          config_files=suppressions.config_files(ctx.source_dir, *CONFIG_FILES))
        if not targets:
            return found.apply(ToolOutput(findings=[], details={"files": 0}))
        try:
            doc = json.loads(result.stdout_tail)
        except ValueError as exc:
            raise ToolFailed("zizmor printed an unreadable SARIF report") from exc
        findings: list[Finding] = findings_from_sarif(self.id, doc, ctx.source_dir, _severity)
        for path, count in suppressions.count_comments(ctx.source_dir, targets, IGNORE_COMMENT).items():
            found.add_inline(path, count)
        suppressions.mark(findings, ctx.source_dir, IGNORE_COMMENT)
        return found.apply(ToolOutput(findings=findings, details={"files": len(targets)}))
