"""detect-secrets, converted to SARIF: secrets in the checkout (``detect-secrets``) and secrets in
earlier commits of the git history (``detect-secrets-history``).

The tool runs through ``secrets_runner.py`` under detect-secrets' own Python, so the secret values
stay inside that process: the report it writes holds only the type, detect-secrets' hash, the place
and the source line with the value masked. The history scan needs the whole history, so it sets
``needs_history`` and the engine then clones without ``depth``.

No baseline is used (a repository's ``.secrets.baseline`` would mark its secrets as known) and
inline ``pragma: allowlist secret`` comments are not honoured; both are reported
(``suppressions.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.textsafe import visible
from workers.scanners import suppressions
from workers.scanners.base import Finding, Scanner, ToolContext, ToolOutput, read_json_report
from workers.scanners.toolenv import dist_version, executable, interpreter_of
from workers.toolrun import ProcessResult

RUNNER = Path(__file__).resolve().parent / "secrets_runner.py"
# Private keys and cloud/provider keys give direct access; generic keywords and high-entropy
# strings are often test data or identifiers.
_SEVERITY = {
    "Private Key": "critical",
    "AWS Access Key": "critical",
    "Azure Storage Account access key": "high",
    "GitHub Token": "high",
    "GitLab Token": "high",
    "Slack Token": "high",
    "Stripe Access Key": "high",
    "Twilio API Key": "high",
    "SendGrid API Key": "high",
    "Mailchimp Access Key": "high",
    "NPM tokens": "high",
    "PyPI upload token": "high",
    "OpenAI Token": "high",
    "Discord Bot Token": "high",
    "Telegram Bot Token": "high",
    "Square OAuth Secret": "high",
    "IBM Cloud IAM Key": "high",
    "IBM COS HMAC Credentials": "high",
    "Cloudant Credentials": "high",
    "Artifactory Credentials": "high",
    "Basic Auth Credentials": "high",
    "JSON Web Token": "medium",
    "Secret Keyword": "medium",
    "Hex High Entropy String": "low",
    "Base64 High Entropy String": "low",
}


CONFIG_FILES = (suppressions.named(".secrets.baseline"),)


def severity(secret_type: str) -> str:
    return _SEVERITY.get(secret_type, "medium")


def rule_id(secret_type: str) -> str:
    return "-".join(secret_type.lower().split())


class _DetectSecretsBase(Scanner):
    mode = "tree"

    def _python(self) -> str | None:
        exe = executable("detect-secrets")
        if not exe:
            return None
        python = interpreter_of(exe)
        return python if python and Path(python).exists() else None

    def unavailable_reason(self) -> str | None:
        if not executable("detect-secrets"):
            return "detect-secrets is not installed (make tools installs requirements/tools-sast.txt)"
        if not self._python():
            return "detect-secrets' Python interpreter cannot be found"
        return None

    def version(self) -> str:
        exe = executable("detect-secrets")
        return dist_version(exe, "detect-secrets") if exe else "unknown"

    def command(self, ctx: ToolContext) -> list[str]:
        python = self._python() or sys.executable
        # -I: the runner's folder must not shadow the real packages, and no user site/env applies.
        argv = [python, "-I", str(RUNNER), "--mode", self.mode, "--source", ".",
                "--out", str(ctx.out_dir / "secrets.json"), "--scratch", str(ctx.out_dir)]
        limit = ctx.config.get("max_blobs")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            argv += ["--max-blobs", str(limit)]
        return argv

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        data = read_json_report("detect-secrets", ctx.out_dir / "secrets.json", result)
        findings = []
        for item in data.get("results", []):
            kind = str(item.get("type", "secret"))
            props: dict[str, object] = {"secret_type": kind}
            if item.get("allowlisted"):
                props["suppression_ignored"] = True
            where = ""
            if item.get("commit"):
                props["commit"] = item["commit"]
                where = f" in commit {item['commit'][:12]} (no longer in the current tree)"
            findings.append(Finding(
                tool=self.id,
                rule_id=rule_id(kind),
                rule_name=kind,
                message=f"{kind} found{where}; revoke it and remove it from the repository",
                severity=severity(kind),
                # A path from the repository (or an old commit's tree): shown, never acted on.
                path=visible(item["path"]) if item.get("path") else None,
                line=item.get("line"),
                # Never the raw line: the runner already masked the value, or gave nothing.
                snippet=item.get("snippet") or f"[{kind} redacted]",
                properties=props,
            ))
        found = suppressions.Suppressions(self.id, "pragma: allowlist secret",
                                          config_files=self._config_files(ctx))
        for path, count in (data.get("allowlist_comments") or {}).items():
            if isinstance(count, int):
                found.add_inline(str(path), count)
        return found.apply(ToolOutput(findings=findings, notes=list(data.get("notes", []))))

    def _config_files(self, ctx: ToolContext) -> list[str]:
        return suppressions.config_files(ctx.source_dir, *CONFIG_FILES)


class DetectSecrets(_DetectSecretsBase):
    id = "detect-secrets"


class DetectSecretsHistory(_DetectSecretsBase):
    id = "detect-secrets-history"
    mode = "history"
    needs_history = True

    def _config_files(self, ctx: ToolContext) -> list[str]:
        return []  # the tree scan reports the checkout's baseline; the history has none of its own
