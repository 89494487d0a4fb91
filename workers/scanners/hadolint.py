"""hadolint: Dockerfile lint (best practice and security), JSON report converted to findings.

hadolint gets the service's own configuration (a repository's ``.hadolint.yaml`` is not read) and
``--disable-ignore-pragma`` (``# hadolint ignore=`` comments are not honoured); what the
repository tried is reported (``suppressions.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from workers.scanners import suppressions
from workers.scanners.base import Finding, ToolContext, ToolFailed, ToolOutput
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sourcefiles import line_text, relative, walk
from workers.toolrun import ProcessResult

SEVERITY = {"error": "high", "warning": "medium", "info": "low", "style": "info"}
IGNORE_PRAGMA = re.compile(r"#\s*hadolint\s+(?:global\s+)?ignore\s*=", re.IGNORECASE)
CONFIG_FILES = (suppressions.named(".hadolint.yaml", ".hadolint.yml", "hadolint.yaml", "hadolint.yml"),)


def is_dockerfile(path: Path) -> bool:
    name = path.name
    return (name in ("Dockerfile", "Containerfile") or name.startswith(("Dockerfile.", "Containerfile."))
            or name.endswith((".Dockerfile", ".dockerfile")))


class Hadolint(PinnedCli):
    id = "hadolint"
    env = "deps"
    program = "hadolint"
    report_on_stdout = True

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "hadolint"
        targets = walk(ctx.source_dir, is_dockerfile)
        (ctx.out_dir / "targets.json").write_text(json.dumps(targets))
        if not targets:
            return [exe, "--version"]
        # Our own (empty) configuration: a repository's .hadolint.yaml does not decide what is found.
        config = ctx.out_dir / "hadolint.yaml"
        config.write_text("ignored: []\ndisable-ignore-pragma: true\n")
        return [exe, "--config", str(config), "--disable-ignore-pragma", "--no-fail", "--no-color", "-f", "json",
                "--", *targets]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        targets = json.loads((ctx.out_dir / "targets.json").read_text())
        if result.exit_code != 0:
            raise ToolFailed(f"hadolint exited {result.exit_code}: {result.stderr_tail[-300:]}")
        found = suppressions.Suppressions(self.id, "# hadolint ignore=",
                                          config_files=suppressions.config_files(ctx.source_dir, *CONFIG_FILES))
        if not targets:
            return found.apply(ToolOutput(findings=[], details={"files": 0}))
        try:
            items = json.loads(result.stdout_tail or "[]")
        except ValueError as exc:
            raise ToolFailed("hadolint printed an unreadable report") from exc
        findings = []
        for item in items:
            rel = relative(ctx.source_dir, item.get("file"))
            line = item.get("line")
            code = str(item.get("code", "DL0000"))
            findings.append(Finding(
                tool=self.id, rule_id=code, message=str(item.get("message", "")),
                severity=SEVERITY.get(str(item.get("level")), "low"), path=rel, line=line,
                column=item.get("column"), snippet=line_text(ctx.source_dir, rel, line),
                help_uri=f"https://github.com/hadolint/hadolint/wiki/{code}" if code.startswith("DL") else
                f"https://www.shellcheck.net/wiki/{code}",
                properties={"level": item.get("level")}))
        for path, count in suppressions.count_comments(ctx.source_dir, targets, IGNORE_PRAGMA).items():
            found.add_inline(path, count)
        suppressions.mark(findings, ctx.source_dir, IGNORE_PRAGMA, before=True)
        return found.apply(ToolOutput(findings=findings, details={"files": len(targets)}))
