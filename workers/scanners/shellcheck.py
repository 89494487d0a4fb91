"""shellcheck: shell script lint (quoting, word splitting, unchecked cd...), json1 report."""

from __future__ import annotations

import json
from pathlib import Path

from workers.scanners.base import Finding, ToolContext, ToolFailed, ToolOutput
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sourcefiles import line_text, relative, walk
from workers.toolrun import ProcessResult

SEVERITY = {"error": "high", "warning": "medium", "info": "low", "style": "info"}
_SUFFIXES = (".sh", ".bash", ".ksh", ".dash")
_SHELLS = (b"sh", b"bash", b"dash", b"ksh")


def is_shell_script(path: Path) -> bool:
    if path.suffix in _SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as fh:
            first = fh.readline(200)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].split()
    if not words:
        return False
    program = words[0].rsplit(b"/", 1)[-1]
    if program == b"env" and len(words) > 1:
        program = words[1]
    return program in _SHELLS


class Shellcheck(PinnedCli):
    id = "shellcheck"
    env = "deps"
    program = "shellcheck"
    category = "iac"
    report_on_stdout = True

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "shellcheck"
        targets = walk(ctx.source_dir, is_shell_script)
        (ctx.out_dir / "targets.json").write_text(json.dumps(targets))
        if not targets:
            return [exe, "--version"]
        # No -x and --norc (a repository's .shellcheckrc could turn following on): `source`
        # lines are not followed, so nothing outside the tree is read.
        return [exe, "--norc", "-f", "json1", "--color=never", "--", *targets]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        targets = json.loads((ctx.out_dir / "targets.json").read_text())
        if not targets:
            if result.exit_code != 0:
                raise ToolFailed(f"shellcheck exited {result.exit_code}")
            return ToolOutput(findings=[], details={"files": 0})
        # 0: clean, 1: findings; anything else is a crash or bad usage.
        if result.exit_code not in (0, 1):
            raise ToolFailed(f"shellcheck exited {result.exit_code}: {result.stderr_tail[-300:]}")
        try:
            comments = json.loads(result.stdout_tail or "{}").get("comments", [])
        except (ValueError, AttributeError) as exc:
            raise ToolFailed("shellcheck printed an unreadable report") from exc
        findings = []
        for item in comments:
            rel = relative(ctx.source_dir, item.get("file"))
            code = f"SC{item.get('code')}"
            line = item.get("line")
            findings.append(Finding(
                tool=self.id, rule_id=code, message=str(item.get("message", "")),
                severity=SEVERITY.get(str(item.get("level")), "low"), path=rel, line=line,
                end_line=item.get("endLine"), column=item.get("column"),
                snippet=line_text(ctx.source_dir, rel, line),
                help_uri=f"https://www.shellcheck.net/wiki/{code}", properties={"level": item.get("level")}))
        return ToolOutput(findings=findings, details={"files": len(targets)})
