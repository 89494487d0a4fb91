"""bandit: Python SAST. Runs with a JSON report, converted to SARIF by the service.

bandit would take its options from any ``.bandit`` file in the tree (skips, excludes, even other
targets) and honour ``# nosec`` comments; it gets the service's own (empty) ``--ini`` file and
``--ignore-nosec`` instead, and what the repository tried is reported (``suppressions.py``).
"""

from __future__ import annotations

import re
from importlib import metadata

from workers.scanners import suppressions
from workers.scanners.base import Finding, Scanner, ToolContext, ToolOutput, find_executable, read_json_report
from workers.scanners.toolenv import mask_literals
from workers.toolrun import ProcessResult

# Hard-coded password checks: the flagged line holds the secret, so its literals are masked.
_CREDENTIAL_TESTS = {"B105", "B106", "B107"}
_SEVERITY = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low", "UNDEFINED": "info"}
NOSEC = re.compile(r"#\s*nosec\b")
# bandit reads .bandit files itself; the YAML and TOML ones are what a repository's CI passes with -c.
CONFIG_FILES = (suppressions.named(".bandit", "bandit.yaml", "bandit.yml", ".bandit.yaml", ".bandit.yml"),
                suppressions.with_section("pyproject.toml", "[tool.bandit"),
                suppressions.with_section("setup.cfg", "[bandit]"), suppressions.with_section("tox.ini", "[bandit]"))


class Bandit(Scanner):
    id = "bandit"

    def unavailable_reason(self) -> str | None:
        return None if find_executable("bandit") else "bandit is not installed"

    def version(self) -> str:
        try:
            return metadata.version("bandit")
        except metadata.PackageNotFoundError:
            return "unknown"

    def command(self, ctx: ToolContext) -> list[str]:
        exe = find_executable("bandit") or "bandit"
        ini = ctx.out_dir / "bandit.ini"
        ini.write_text("[bandit]\n")  # an --ini file stops bandit looking for .bandit files in the tree
        return [exe, "-r", ".", "-f", "json", "-o", str(ctx.out_dir / "bandit.json"), "--ini", str(ini),
                "--ignore-nosec", "--exclude", "./.git"]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        # bandit exits 1 when it finds issues; anything else non-zero is a crash.
        data = read_json_report("bandit", ctx.out_dir / "bandit.json", result, ok_exit=(0, 1))
        findings = []
        for item in data.get("results", []):
            path = str(item.get("filename", "")).removeprefix("./")
            line_range = item.get("line_range") or [item.get("line_number")]
            snippet = _code_line(item.get("code", ""), item.get("line_number"))
            message = str(item.get("issue_text", ""))
            if item.get("test_id") in _CREDENTIAL_TESTS:
                # bandit quotes the password in its message too
                snippet, message = mask_literals(snippet), mask_literals(message) or ""
            findings.append(Finding(
                tool=self.id,
                rule_id=item.get("test_id", "B000"),
                rule_name=item.get("test_name"),
                message=message,
                severity=_SEVERITY.get(str(item.get("issue_severity", "")).upper(), "info"),
                path=path or None,
                line=item.get("line_number"),
                end_line=max(line_range) if line_range and all(isinstance(x, int) for x in line_range) else None,
                column=(item.get("col_offset") or 0) + 1,
                snippet=snippet,
                help_uri=item.get("more_info"),
                properties={"confidence": str(item.get("issue_confidence", "")).lower(),
                            "cwe": (item.get("issue_cwe") or {}).get("id")},
            ))
        found = suppressions.Suppressions(self.id, "# nosec",
                                          config_files=suppressions.config_files(ctx.source_dir, *CONFIG_FILES))
        scanned = [str(name).removeprefix("./") for name in (data.get("metrics") or {}) if name != "_totals"]
        for path, count in suppressions.count_comments(ctx.source_dir, scanned, NOSEC).items():
            found.add_inline(path, count)
        suppressions.mark(findings, ctx.source_dir, NOSEC)
        return found.apply(ToolOutput(findings=findings))


def _code_line(code: str, line: int | None) -> str | None:
    """bandit's ``code`` holds numbered context lines; keep the flagged one (stable across moves)."""
    for raw in code.splitlines():
        number, _, text = raw.partition(" ")
        if number.isdigit() and int(number) == line:
            return text.strip() or None
    return code.strip() or None
