"""checkov: infrastructure-as-code misconfigurations (Dockerfile, Kubernetes, Terraform,
CloudFormation, GitHub Actions...), offline: no API key, no guideline download, no package or
image scans (those need the vendor's platform) and no secrets scan (detect-secrets covers it).

checkov runs through ``checkov_runner.py`` under its own Python, which keeps Terraform modules
inside the checkout: a module whose ``source`` is an absolute path, climbs out with ``..`` or goes
through a link out of the tree is not loaded, and the scan gets a
``terraform_module_outside_source`` warning. A result about a file outside the checkout is dropped
whatever produced it, and checkov's report never reaches the log (it prints it on stdout, which is
kept for the adapter instead of streamed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.textsafe import visible
from workers.scanners import suppressions
from workers.scanners.base import Finding, ToolContext, ToolOutput, read_json_report
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sourcefiles import relative
from workers.scanners.toolenv import interpreter_of, relative_path
from workers.toolrun import ProcessResult

RUNNER = Path(__file__).resolve().parent / "checkov_runner.py"
SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "INFO": "info"}
UNRATED = "medium"  # offline checkov reports no severities
SKIPPED_FRAMEWORKS = ("secrets", "sca_package", "sca_image")
MODULE_OUTSIDE = "terraform_module_outside_source"
CONFIG_FILES = (suppressions.named(".checkov.yaml", ".checkov.yml"),)


class Checkov(PinnedCli):
    id = "checkov"
    env = "checkov"
    program = "checkov"
    # checkov reads .checkov.yaml from its working folder and from the folder after a separate
    # `-d`/`--directory` argument, and such a file can name directories of Python checks to import
    # or checks to skip. So it runs from its scratch folder and gets `--directory=<path>` as one
    # argument, which its config lookup does not see: a scanned repository configures nothing.
    runs_outside_source = True
    # checkov prints its JSON report on stdout as well as writing it: the report quotes the scanned
    # files' values, which do not belong in the scan's log.
    report_on_stdout = True

    def _python(self) -> str | None:
        exe = self.executable()
        python = interpreter_of(exe) if exe else None
        return python if python and Path(python).exists() else None

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and not self._python():
            return "checkov's Python interpreter cannot be found"
        return reason

    def command(self, ctx: ToolContext) -> list[str]:
        # Without --quiet the report also lists the checks that inline comments skipped.
        return [self._python() or "python3", "-I", str(RUNNER), "--confine", str(ctx.source_dir),
                "--refused", str(ctx.out_dir / "refused-modules.jsonl"), "--",
                f"--directory={ctx.source_dir}", "--output", "json", "--output-file-path", str(ctx.out_dir),
                "--compact", "--soft-fail", "--skip-download", "--download-external-modules", "false",
                "--skip-framework", *SKIPPED_FRAMEWORKS]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        data = read_json_report("checkov", ctx.out_dir / "results_json.json", result)
        runs = data if isinstance(data, list) else [data]
        findings = []
        outside = 0
        frameworks: dict[str, dict[str, Any]] = {}
        found = suppressions.Suppressions(self.id, "checkov:skip= comments, skip annotations",
                                          config_files=suppressions.config_files(ctx.source_dir, *CONFIG_FILES))
        for run in runs:
            if not isinstance(run, dict):
                continue
            if run.get("check_type"):
                frameworks[run["check_type"]] = {k: (run.get("summary") or {}).get(k)
                                                 for k in ("passed", "failed", "skipped", "parsing_errors")}
            results = run.get("results") or {}
            # A check an inline comment skipped was not evaluated; the skip is not honoured, so it
            # is reported as if it had failed.
            skipped = [item for item in results.get("skipped_checks") or []
                       if isinstance(item, dict) and "suppress_comment" in (item.get("check_result") or {})]
            for item in [*(results.get("failed_checks") or []), *skipped]:
                if not isinstance(item, dict):
                    continue
                finding = self._finding(ctx, run.get("check_type"), item)
                if finding is None:
                    outside += 1
                    continue
                if finding.properties.get("suppression_ignored") and finding.path:
                    found.add_inline(finding.path)
                findings.append(finding)
        output = ToolOutput(findings=findings, details={"frameworks": frameworks})
        if outside:
            output.notes.append(f"{outside} results about files outside the checkout were dropped")
            output.details["results_outside_source"] = outside
        refused = _refused_modules(ctx.out_dir / "refused-modules.jsonl")
        if refused:
            listed = ", ".join(visible(d) for d in refused[:suppressions.LISTED])
            more = f" and {len(refused) - suppressions.LISTED} more" if len(refused) > suppressions.LISTED else ""
            message = (f"checkov: Terraform modules whose source lies outside the checkout were not loaded "
                       f"(called from {listed}{more})")
            output.warnings.append({"code": MODULE_OUTSIDE, "message": message})
            output.notes.append(message)
            output.details["modules_outside_source"] = [visible(d) for d in refused[:suppressions.DETAILED]]
        return found.apply(output)

    def _finding(self, ctx: ToolContext, framework: str | None, item: dict[str, Any]) -> Finding | None:
        """The finding for one result, or None when its file lies outside the checkout."""
        rel = _source_path(ctx.source_dir, item)
        if rel is None:
            return None
        lines = item.get("file_line_range") or [None, None]
        start = lines[0] if lines and isinstance(lines[0], int) and lines[0] > 0 else None
        end = lines[1] if len(lines) > 1 and isinstance(lines[1], int) else None
        raw = str(item.get("severity") or "").upper()
        check = item.get("check_result") or {}
        name = str(item.get("check_name", ""))
        resource = str(item.get("resource") or "")
        props: dict[str, Any] = {"framework": framework, "resource": resource or None,
                                 "severity_source": "checkov" if raw in SEVERITY else "unrated"}
        message = name
        if "suppress_comment" in check:
            props["suppression_ignored"] = True
            props["suppress_comment"] = visible(str(check.get("suppress_comment") or "").strip()[:200])
            message = f"{name} (skipped by a comment in the repository, which the scan does not honour: not evaluated)"
        return Finding(
            tool=self.id, rule_id=str(item.get("check_id", "CKV_UNKNOWN")),
            rule_name=item.get("check_name"), message=message,
            severity=SEVERITY.get(raw, UNRATED), path=rel, line=start, end_line=end,
            snippet=visible(resource)[:300] or None, help_uri=item.get("guideline"),
            properties=props)


def _source_path(root: Path, item: dict[str, Any]) -> str | None:
    """The result's file relative to the checkout (links resolved), or None when it lies outside.
    checkov gives the absolute path and a root-relative one (``/main.tf``; ``/../x/main.tf`` for
    a file above the root)."""
    absolute = item.get("file_abs_path")
    if isinstance(absolute, str) and absolute:
        return relative_path(root, absolute)
    reported = item.get("file_path")
    rel = relative(root, reported) if isinstance(reported, str) else None
    return relative_path(root, rel) if rel else None


def _refused_modules(path: Path) -> list[str]:
    """The folders (relative to the checkout) whose module calls the runner refused, once each."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out: list[str] = []
    for line in lines:
        try:
            folder = json.loads(line).get("dir")
        except (ValueError, AttributeError):
            continue
        if isinstance(folder, str) and folder not in out:
            out.append(folder)
    return out
