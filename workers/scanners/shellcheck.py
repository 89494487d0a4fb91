"""shellcheck: shell script lint (quoting, word splitting, unchecked cd...), json1 report.

shellcheck runs with ``--norc`` (no ``.shellcheckrc``) and has no switch to ignore its
``# shellcheck disable=`` directives, so a script that carries one is linted from a copy in the
tool's scratch folder with the directive's ``disable=`` blanked out (same length: lines and
columns do not move); findings are reported against the original file, and the directives are
reported (``suppressions.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from workers.scanners import suppressions
from workers.scanners.base import Finding, ToolContext, ToolFailed, ToolOutput
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sourcefiles import MAX_BYTES, line_text, relative, walk
from workers.toolrun import ProcessResult

SEVERITY = {"error": "high", "warning": "medium", "info": "low", "style": "info"}
# A directive comment and, inside it, each `disable=...` key (shellcheck reads keys case-sensitively).
DIRECTIVE = re.compile(r"#\s*shellcheck\s+[^#\n]*")
DISABLE = re.compile(r"\bdisable=\S*")
DISABLING = re.compile(r"#\s*shellcheck\s+[^#\n]*\bdisable=")
_OTHER_KEY = re.compile(r"\b[a-z-]+=")
CONFIG_FILES = (suppressions.named(".shellcheckrc", "shellcheckrc"),)
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
    report_on_stdout = True

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "shellcheck"
        targets = walk(ctx.source_dir, is_shell_script)
        copies, directives = _without_disable_directives(ctx.source_dir, targets, ctx.out_dir / "unsuppressed")
        (ctx.out_dir / "targets.json").write_text(json.dumps(targets))
        (ctx.out_dir / "copies.json").write_text(json.dumps({"copies": copies, "directives": directives}))
        if not targets:
            return [exe, "--version"]
        # No -x and --norc (a repository's .shellcheckrc could turn following on): `source`
        # lines are not followed, so nothing outside the tree is read.
        return [exe, "--norc", "-f", "json1", "--color=never", "--", *[copies.get(t, t) for t in targets]]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        targets = json.loads((ctx.out_dir / "targets.json").read_text())
        rewritten = json.loads((ctx.out_dir / "copies.json").read_text())
        originals = {copy: rel for rel, copy in rewritten["copies"].items()}
        found = suppressions.Suppressions(self.id, "# shellcheck disable=",
                                          config_files=suppressions.config_files(ctx.source_dir, *CONFIG_FILES))
        for path, count in rewritten["directives"].items():
            found.add_inline(path, count)
        if not targets:
            if result.exit_code != 0:
                raise ToolFailed(f"shellcheck exited {result.exit_code}")
            return found.apply(ToolOutput(findings=[], details={"files": 0}))
        # 0: clean, 1: findings; anything else is a crash or bad usage.
        if result.exit_code not in (0, 1):
            raise ToolFailed(f"shellcheck exited {result.exit_code}: {result.stderr_tail[-300:]}")
        try:
            comments = json.loads(result.stdout_tail or "{}").get("comments", [])
        except (ValueError, AttributeError) as exc:
            raise ToolFailed("shellcheck printed an unreadable report") from exc
        findings = []
        for item in comments:
            reported = item.get("file")
            rel = originals[reported] if reported in originals else relative(ctx.source_dir, reported)
            code = f"SC{item.get('code')}"
            line = item.get("line")
            findings.append(Finding(
                tool=self.id, rule_id=code, message=str(item.get("message", "")),
                severity=SEVERITY.get(str(item.get("level")), "low"), path=rel, line=line,
                end_line=item.get("endLine"), column=item.get("column"),
                snippet=line_text(ctx.source_dir, rel, line),
                help_uri=f"https://www.shellcheck.net/wiki/{code}", properties={"level": item.get("level")}))
        suppressions.mark(findings, ctx.source_dir, DISABLING, before=True)
        return found.apply(ToolOutput(findings=findings, details={"files": len(targets)}))


def _without_disable_directives(root: Path, targets: list[str], dest: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Copies, under ``dest``, of the scripts whose directives disable checks, with every
    ``disable=`` key blanked (and the directive word too when nothing else is left, since an empty
    directive is a parse error). Returns {script: its copy} and {script: directives changed}."""
    copies: dict[str, str] = {}
    changed: dict[str, int] = {}
    for rel in targets:
        source = root / rel
        try:
            if source.is_symlink() or source.stat().st_size > MAX_BYTES:
                continue
            data = source.read_bytes()
        except OSError:
            continue
        if b"disable=" not in data:
            continue
        text = data.decode("utf-8", "surrogateescape")
        count = 0

        def blank(match: re.Match[str]) -> str:
            nonlocal count
            directive = match.group(0)
            if not DISABLE.search(directive):
                return directive
            count += 1
            kept = DISABLE.sub(lambda m: " " * len(m.group(0)), directive)
            if not _OTHER_KEY.search(kept):
                kept = "#" + " " * (len(directive) - 1)
            return kept

        rewritten = DIRECTIVE.sub(blank, text)
        if not count:
            continue
        copy = dest / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(rewritten.encode("utf-8", "surrogateescape"))
        copies[rel] = str(copy)
        changed[rel] = count
    return copies, changed
