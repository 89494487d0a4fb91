"""A scanned repository's own tool configuration can add findings, never remove them.

Each case is a tree with a vulnerable line and a hostile way to switch the tool off: the tool's own
configuration file (skips, excludes, ignores), an ignore file (.gitignore, .semgrepignore) or an
inline suppression comment. The real tool runs through its adapter as a scan runs it (its working
folder, scratch folder and scrubbed environment); the finding must still be reported, and the
attempt must come back as a warning (``tool_config_ignored`` naming the file,
``inline_suppression_ignored`` naming the file with the comment), never silently."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.scanrun import run_scanner
from workers.scanners.bandit import Bandit
from workers.scanners.base import Scanner, ToolOutput
from workers.scanners.checkov import Checkov
from workers.scanners.detect_secrets_scan import DetectSecrets
from workers.scanners.hadolint import Hadolint
from workers.scanners.ruff_security import RuffSecurity
from workers.scanners.sbom import CYCLONEDX, Sbom
from workers.scanners.semgrep import Semgrep
from workers.scanners.shellcheck import Shellcheck
from workers.scanners.zizmor import Zizmor

SHELL_LINE = "    return subprocess.call(command, shell=True)"
PYTHON = f"import subprocess\n\n\ndef run(command):\n{SHELL_LINE}{{comment}}\n"
AWS_KEY = "AKIAZ7XQ4RTY2WPLMN3B"
WORKFLOW = """name: ci
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - name: greet
        run: echo "Building ${{{{ github.event.pull_request.title }}}}"{comment}
"""


@dataclass
class Case:
    scanner: Callable[[], Scanner]
    files: dict[str, str]
    rule: str
    path: str
    warnings: dict[str, str]  # warning code -> a file its message must name
    inline: bool = False  # the finding's own line carries the suppression
    extra: dict[str, str] = field(default_factory=dict)


CASES = {
    # .bandit is read from anywhere in the tree and takes skips, excludes and even other targets;
    # pyproject.toml is what a repository's CI passes with -c.
    "bandit-config": Case(Bandit, {
        "app.py": PYTHON.format(comment=""),
        ".bandit": "[bandit]\nskips = B602,B404\nexclude = ./app.py\n",
        "pyproject.toml": '[tool.bandit]\nskips = ["B602"]\nexclude_dirs = ["."]\n',
    }, "B602", "app.py", {"tool_config_ignored": ".bandit"}),
    "bandit-nosec": Case(Bandit, {"app.py": PYTHON.format(comment="  # nosec B602")}, "B602", "app.py",
                         {"inline_suppression_ignored": "app.py"}, inline=True),
    # ruff.toml and .gitignore: ruff honours a .gitignore even with --isolated and outside git.
    "ruff-config": Case(RuffSecurity, {
        "app.py": PYTHON.format(comment=""),
        "ruff.toml": '[lint]\nignore = ["S"]\nexclude = ["app.py"]\n',
        ".gitignore": "*.py\n",
        ".ignore": "app.py\n",
    }, "S602", "app.py", {"tool_config_ignored": "ruff.toml"}),
    "ruff-noqa": Case(RuffSecurity, {"app.py": "# ruff: noqa\n" + PYTHON.format(comment="  # noqa: S602")},
                      "S602", "app.py", {"inline_suppression_ignored": "app.py"}, inline=True),
    # .semgrepignore, and semgrep's default ignore list (tests/) that applies without one.
    "semgrep-ignore-file": Case(Semgrep, {
        "app.py": PYTHON.format(comment=""),
        ".semgrepignore": "app.py\n",
    }, "subprocess-shell-with-input", "app.py", {"tool_config_ignored": ".semgrepignore"},
        extra={"tests/test_app.py": PYTHON.format(comment="")}),
    "semgrep-nosemgrep": Case(Semgrep, {"app.py": PYTHON.format(comment="  # nosemgrep")},
                              "subprocess-shell-with-input", "app.py", {"inline_suppression_ignored": "app.py"},
                              inline=True),
    "detect-secrets-baseline": Case(DetectSecrets, {
        "settings.py": f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n',
        ".secrets.baseline": json.dumps({"version": "1.5.0", "results": {"settings.py": [
            {"type": "AWS Access Key", "filename": "settings.py", "is_verified": False, "line_number": 1,
             "hashed_secret": "0" * 40}]}}),
    }, "aws-access-key", "settings.py", {"tool_config_ignored": ".secrets.baseline"}),
    "detect-secrets-pragma": Case(DetectSecrets, {
        "settings.py": f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"  # pragma: allowlist secret\n',
    }, "aws-access-key", "settings.py", {"inline_suppression_ignored": "settings.py"}, inline=True),
    "checkov-config": Case(Checkov, {
        "Dockerfile": "FROM ubuntu:latest\nRUN echo hello\n",
        ".checkov.yaml": "skip-check:\n  - CKV_DOCKER_7\nskip-path:\n  - Dockerfile\n",
    }, "CKV_DOCKER_7", "Dockerfile", {"tool_config_ignored": ".checkov.yaml"}),
    "checkov-skip-comment": Case(Checkov, {
        "Dockerfile": "# checkov:skip=CKV_DOCKER_7: pinned elsewhere\nFROM ubuntu:latest\nRUN echo hello\n",
    }, "CKV_DOCKER_7", "Dockerfile", {"inline_suppression_ignored": "Dockerfile"}),
    "hadolint-config": Case(Hadolint, {
        "Dockerfile": "FROM ubuntu:latest\nRUN echo hello\n",
        ".hadolint.yaml": "ignored:\n  - DL3007\n",
    }, "DL3007", "Dockerfile", {"tool_config_ignored": ".hadolint.yaml"}),
    "hadolint-pragma": Case(Hadolint, {
        "Dockerfile": "# hadolint global ignore=DL3006\n# hadolint ignore=DL3007\nFROM ubuntu:latest\n",
    }, "DL3007", "Dockerfile", {"inline_suppression_ignored": "Dockerfile"}, inline=True),
    "shellcheck-rc": Case(Shellcheck, {
        "deploy.sh": "#!/bin/bash\ncd $TARGET\n",
        ".shellcheckrc": "disable=SC2164\n",
    }, "SC2164", "deploy.sh", {"tool_config_ignored": ".shellcheckrc"}),
    "shellcheck-directive": Case(Shellcheck, {
        "deploy.sh": "#!/bin/bash\n# shellcheck disable=SC2164,SC2086 shell=bash\ncd $TARGET\n",
    }, "SC2164", "deploy.sh", {"inline_suppression_ignored": "deploy.sh"}, inline=True),
    "zizmor-config": Case(Zizmor, {
        ".github/workflows/ci.yml": WORKFLOW.format(comment=""),
        ".github/zizmor.yml": "rules:\n  template-injection:\n    disable: true\n",
        ".gitignore": ".github/\n",
    }, "zizmor/template-injection", ".github/workflows/ci.yml", {"tool_config_ignored": ".github/zizmor.yml"}),
    "zizmor-ignore-comment": Case(Zizmor, {
        ".github/workflows/ci.yml": WORKFLOW.format(comment="  # zizmor: ignore[template-injection]"),
    }, "zizmor/template-injection", ".github/workflows/ci.yml",
        {"inline_suppression_ignored": ".github/workflows/ci.yml"}, inline=True),
}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _warned(output: ToolOutput, code: str, names: str) -> None:
    messages = [w["message"] for w in output.warnings if w["code"] == code]
    assert messages and names in messages[0], output.warnings
    assert messages[0] in output.notes  # also a line of the scan's log


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_the_repository_cannot_switch_a_check_off(case: Case, tmp_path: Path) -> None:
    scanner = case.scanner()
    assert scanner.unavailable_reason() is None, "run `make tools` first"
    source = _tree(tmp_path / "src", {**case.files, **case.extra})
    output, _ = run_scanner(scanner, source, tmp_path / "scratch")
    hits = [f for f in output.findings if (f.rule_id, f.path) == (case.rule, case.path)]
    assert hits, sorted((f.rule_id, f.path) for f in output.findings)
    for code, names in case.warnings.items():
        _warned(output, code, names)
    if case.inline:
        assert all(f.properties.get("suppression_ignored") is True for f in hits)
    for rel in case.extra:  # files an ignore list would have left out are scanned too
        assert any(f.path == rel for f in output.findings), rel


def test_a_clean_repository_gets_no_warning(tmp_path: Path) -> None:
    """The control: the same vulnerable file without any attempt gives the finding and no warning."""
    source = _tree(tmp_path / "src", {"app.py": PYTHON.format(comment=""), "pyproject.toml": "[project]\n"})
    for scanner in (Bandit(), RuffSecurity()):
        output, _ = run_scanner(scanner, source, tmp_path / "scratch" / scanner.id)
        assert output.findings and output.warnings == [] and "suppressions" not in output.details


def test_checkov_reports_a_skipped_check_as_not_honoured(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", CASES["checkov-skip-comment"].files)
    output, _ = run_scanner(Checkov(), source, tmp_path / "scratch")
    skipped = next(f for f in output.findings if f.rule_id == "CKV_DOCKER_7")
    assert skipped.properties["suppress_comment"] == "pinned elsewhere"
    assert "does not honour" in skipped.message
    assert output.details["suppressions"]["inline_suppressions_ignored"] == {"Dockerfile": 1}


def test_syft_does_not_read_the_repository_config(tmp_path: Path) -> None:
    scanner = Sbom()
    assert scanner.unavailable_reason() is None, "run `make tools` first"
    source = _tree(tmp_path / "src", {
        "requirements.txt": "requests==2.19.1\n",
        ".syft.yaml": 'exclude:\n  - "./requirements.txt"\n  - "**/requirements.txt"\n',
        ".syft/config.yaml": 'exclude:\n  - "**/*.txt"\n',
    })
    output, _ = run_scanner(scanner, source, tmp_path / "scratch")
    purls = {c.get("purl") for c in json.loads(output.files[CYCLONEDX])["components"]}
    assert "pkg:pypi/requests@2.19.1" in purls
    _warned(output, "tool_config_ignored", ".syft.yaml")
    assert ".syft/config.yaml" in output.warnings[0]["message"]


def test_a_file_name_in_a_warning_cannot_forge_a_line(tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", {"Dockerfile": "FROM ubuntu:latest\n",
                                      "sub\n00:00:00 scan SUCCEEDED/.hadolint.yaml": "ignored: [DL3007]\n"})
    output, _ = run_scanner(Hadolint(), source, tmp_path / "scratch")
    message = output.warnings[0]["message"]
    assert "\n" not in message and "sub\\n00:00:00" in message


def test_through_the_service_the_warning_reaches_the_scan_record_and_the_finding_stays(service, git_server):
    from tests.support.gitrepos import make_repo

    make_repo(git_server.base, "switch-off", {
        "app.py": "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n",
        ".bandit": "[bandit]\nskips: B602,B604\nexclude: app.py\n",
    })
    resp = service.submit(git_url=git_server.url("switch-off"), profile="smoke")
    assert resp.status_code == 202, resp.text
    record = service.wait_done(resp.json()["test_id"], timeout=300)
    assert record["status"] == "SUCCEEDED", record["errors"]
    warned = [w for w in record["warnings"] if w["code"] == "tool_config_ignored"]
    assert warned and ".bandit" in warned[0]["message"] and warned[0]["message"].startswith("bandit")
    assert record["summary"]["by_tool"]["bandit"]["high"] >= 1  # B602 still reported
