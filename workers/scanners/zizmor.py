"""zizmor: GitHub Actions workflow and action audits (template injection, dangerous triggers,
unpinned actions, excessive permissions...), run with ``--offline``; SARIF converted to findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workers.scanners.base import Finding, ToolContext, ToolFailed, ToolOutput
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sarif_input import findings_from_sarif
from workers.scanners.sourcefiles import walk
from workers.toolrun import ProcessResult

SEVERITY = {"high": "high", "medium": "medium", "low": "low", "informational": "info", "unknown": "low"}


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
    category = "iac"
    report_on_stdout = True

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "zizmor"
        targets = walk(ctx.source_dir, is_github_input)
        (ctx.out_dir / "targets.json").write_text(json.dumps(targets))
        if not targets:
            return [exe, "--version"]  # zizmor refuses a tree with nothing to audit
        # --no-config: a repository's zizmor.yml does not decide what is found.
        return [exe, "--offline", "--no-config", "--no-exit-codes", "--no-progress", "--format", "sarif", "."]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        targets = json.loads((ctx.out_dir / "targets.json").read_text())
        if result.exit_code != 0:
            raise ToolFailed(f"zizmor exited {result.exit_code}: {result.stderr_tail[-300:]}")
        if not targets:
            return ToolOutput(findings=[], details={"files": 0})
        try:
            doc = json.loads(result.stdout_tail)
        except ValueError as exc:
            raise ToolFailed("zizmor printed an unreadable SARIF report") from exc
        findings: list[Finding] = findings_from_sarif(self.id, doc, ctx.source_dir, _severity)
        return ToolOutput(findings=findings, details={"files": len(targets)})
