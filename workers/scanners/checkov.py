"""checkov: infrastructure-as-code misconfigurations (Dockerfile, Kubernetes, Terraform,
CloudFormation, GitHub Actions...), offline: no API key, no guideline download, no package or
image scans (those need the vendor's platform) and no secrets scan (detect-secrets covers it)."""

from __future__ import annotations

from typing import Any

from workers.scanners.base import Finding, ToolContext, ToolOutput, read_json_report
from workers.scanners.cli_version import PinnedCli
from workers.scanners.sourcefiles import relative
from workers.toolrun import ProcessResult

SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "INFO": "info"}
UNRATED = "medium"  # offline checkov reports no severities
SKIPPED_FRAMEWORKS = ("secrets", "sca_package", "sca_image")


class Checkov(PinnedCli):
    id = "checkov"
    env = "checkov"
    program = "checkov"
    category = "iac"
    # checkov reads .checkov.yaml from its working folder and from the folder after a separate
    # `-d`/`--directory` argument, and such a file can name directories of Python checks to import
    # or checks to skip. So it runs from its scratch folder and gets `--directory=<path>` as one
    # argument, which its config lookup does not see: a scanned repository configures nothing.
    runs_outside_source = True

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "checkov"
        return [exe, f"--directory={ctx.source_dir}", "--output", "json", "--output-file-path", str(ctx.out_dir),
                "--quiet", "--compact", "--soft-fail", "--skip-download",
                "--skip-framework", *SKIPPED_FRAMEWORKS]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        data = read_json_report("checkov", ctx.out_dir / "results_json.json", result)
        runs = data if isinstance(data, list) else [data]
        findings = []
        frameworks: dict[str, dict[str, Any]] = {}
        for run in runs:
            if not isinstance(run, dict):
                continue
            if run.get("check_type"):
                frameworks[run["check_type"]] = {k: (run.get("summary") or {}).get(k)
                                                 for k in ("passed", "failed", "parsing_errors")}
            for item in (run.get("results") or {}).get("failed_checks") or []:
                findings.append(self._finding(ctx, run.get("check_type"), item))
        return ToolOutput(findings=findings, details={"frameworks": frameworks})

    def _finding(self, ctx: ToolContext, framework: str | None, item: dict[str, Any]) -> Finding:
        rel = relative(ctx.source_dir, item.get("file_path"))
        lines = item.get("file_line_range") or [None, None]
        start = lines[0] if lines and isinstance(lines[0], int) and lines[0] > 0 else None
        end = lines[1] if len(lines) > 1 and isinstance(lines[1], int) else None
        raw = str(item.get("severity") or "").upper()
        return Finding(
            tool=self.id, rule_id=str(item.get("check_id", "CKV_UNKNOWN")),
            rule_name=item.get("check_name"), message=str(item.get("check_name", "")),
            severity=SEVERITY.get(raw, UNRATED), path=rel, line=start, end_line=end,
            snippet=str(item.get("resource") or "") or None, help_uri=item.get("guideline"),
            properties={"framework": framework, "resource": item.get("resource"),
                        "severity_source": "checkov" if raw in SEVERITY else "unrated"})
