"""ruff's security rules (the ``S`` set, ruff's port of bandit): fast Python SAST.

ruff runs isolated (``--isolated``): a scanned repository's own ruff configuration can neither
switch rules off nor widen the scan outside the checkout. It also ignores the repository's
``.gitignore`` and ``.ignore`` files (``--no-respect-gitignore``: a committed file is scanned
whatever they say) and its ``# noqa`` comments (``--ignore-noqa``); what the repository tried is
reported (``suppressions.py``). Severities follow what the rule lets an attacker do; see
docs/scanners-sast.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from workers.scanners import suppressions
from workers.scanners.base import Finding, Scanner, ToolContext, ToolFailed, ToolOutput, read_json_report
from workers.scanners.sourcefiles import walk
from workers.scanners.toolenv import cli_version, executable, mask_literals, relative_path, source_line
from workers.toolrun import ProcessResult

# Code execution, injection, unsafe deserialisation, disabled TLS verification.
_HIGH = {"S102", "S301", "S302", "S307", "S501", "S506", "S507", "S601", "S602", "S604", "S605", "S608",
         "S609", "S323", "S611", "S701", "S702", "S704"}
# Weak crypto, hard-coded credentials, risky config: exploitable with more context.
_MEDIUM = {"S103", "S104", "S105", "S106", "S107", "S108", "S202", "S303", "S304", "S305", "S306", "S308",
           "S310", "S312", "S313", "S314", "S315", "S316", "S317", "S318", "S319", "S320", "S321", "S324",
           "S502", "S503", "S504", "S505", "S508", "S509", "S610", "S612"}
# Audit hints: suspicious imports, subprocess without a shell, try/except/pass, missing timeouts.
_LOW = {"S110", "S112", "S113", "S311", "S603", "S606", "S607"}
# Hard-coded passwords: the flagged line holds the secret, so its string literals are masked.
CREDENTIAL_RULES = {"S105", "S106", "S107"}
# noqa comments, with or without codes, and the file-wide ruff/flake8 forms, in any case, as ruff reads them.
NOQA = re.compile(r"#\s*(?:(?:ruff|flake8)\s*:\s*)?noqa\b", re.IGNORECASE)
CONFIG_FILES = (suppressions.named("ruff.toml", ".ruff.toml"),
                suppressions.with_section("pyproject.toml", "[tool.ruff"))
PYTHON_SUFFIXES = (".py", ".pyi", ".pyw")
MAX_COUNTED_FILES = 20_000


def severity(code: str) -> str:
    if code in _HIGH:
        return "high"
    if code in _MEDIUM:
        return "medium"
    if code in _LOW or code.startswith("S4"):  # S4xx: imports of risky modules
        return "low"
    return "medium"


class RuffSecurity(Scanner):
    id = "ruff"

    def unavailable_reason(self) -> str | None:
        return None if executable("ruff") else "ruff is not installed (make tools installs requirements/tools-sast.txt)"

    def version(self) -> str:
        exe = executable("ruff")
        return cli_version(exe) if exe else "unknown"

    def command(self, ctx: ToolContext) -> list[str]:
        return [executable("ruff") or "ruff", "check", "--isolated", "--no-respect-gitignore", "--ignore-noqa",
                "--no-cache", "--select", "S", "--output-format", "json",
                "--output-file", str(ctx.out_dir / "ruff.json"), "--exit-zero", "."]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        # With --exit-zero any non-zero exit is a crash or a usage error.
        items = read_json_report("ruff", ctx.out_dir / "ruff.json", result, empty=[])
        if not isinstance(items, list):
            raise ToolFailed("ruff wrote an unexpected report")
        findings = []
        for item in items:
            code = str(item.get("code") or "")
            if not code.startswith("S"):
                continue
            path = relative_path(ctx.source_dir, str(item.get("filename", "")))
            start = item.get("location") or {}
            end = item.get("end_location") or {}
            line = start.get("row")
            snippet = source_line(ctx.source_dir, path, line)
            if code in CREDENTIAL_RULES:
                snippet = mask_literals(snippet)
            findings.append(Finding(
                tool=self.id,
                rule_id=code,
                rule_name=code,
                message=str(item.get("message", "")),
                severity=severity(code),
                path=path,
                line=line,
                end_line=end.get("row"),
                column=start.get("column"),
                snippet=snippet,
                help_uri=item.get("url"),
            ))
        suppressions.mark(findings, ctx.source_dir, NOQA)
        return _suppressions(ctx.source_dir).apply(ToolOutput(findings=findings))


def _suppressions(root: Path) -> suppressions.Suppressions:
    found = suppressions.Suppressions("ruff", "# noqa", config_files=suppressions.config_files(root, *CONFIG_FILES))
    python = walk(root, lambda path: path.suffix in PYTHON_SUFFIXES, limit=MAX_COUNTED_FILES)
    for path, count in suppressions.count_comments(root, python, NOQA).items():
        found.add_inline(path, count)
    return found
