"""The SAST and secrets adapters, each running the real tool on the vulnerable fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks.profiles import BUILTIN_PROFILES
from tests.support.gitrepos import commit_files, git, make_repo
from tests.support.scanning import located, run_scanner, sarif_of, sarif_text
from workers.scanners.base import Scanner
from workers.scanners.detect_secrets_scan import DetectSecrets, DetectSecretsHistory
from workers.scanners.registry import all_scanners
from workers.scanners.ruff_security import RuffSecurity
from workers.scanners.semgrep import Semgrep, rule_files
from workers.scanners.toolenv import mask_literals

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vulnerable-python"
# Every secret planted in the fixture (and in the history test below), which must never leak.
PLANTED_SECRETS = ("hunter2-correct-horse", "sk_live_9f8e7d6c5b4a3f2e1d0c9b8a", "AKIAQ3EGRT7NWXJZ5KPL")
HISTORY_SECRET = "ghp_R8nQ2vX7kLm4Tz9WbY3cD6fH1jP5sA0eU2gK"


def _installed(scanner: Scanner) -> None:
    reason = scanner.unavailable_reason()
    if reason:
        pytest.fail(f"{scanner.id} must be installed for these tests (make tools): {reason}")


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    dest = tmp_path / "src"
    shutil.copytree(FIXTURE, dest)
    return dest


def _no_leak(text: str, secrets: tuple[str, ...] = PLANTED_SECRETS) -> None:
    for secret in secrets:
        assert secret not in text


def test_ruff_security_rules(source: Path, tmp_path: Path) -> None:
    scanner = RuffSecurity()
    _installed(scanner)
    out = run_scanner(scanner, source, tmp_path / "scratch")
    assert {("S602", "app.py", 9), ("S301", "app.py", 14), ("S105", "app.py", 19), ("S608", "db.py", 13),
            ("S506", "db.py", 18), ("S307", "db.py", 22), ("S324", "db.py", 26), ("S501", "db.py", 30),
            ("S605", "db.py", 34)} <= located(out)
    by_rule = {f.rule_id: f for f in out.findings}
    assert by_rule["S602"].severity == "high" and by_rule["S608"].severity == "high"
    assert by_rule["S324"].severity == "medium" and by_rule["S105"].severity == "medium"
    assert by_rule["S602"].snippet == "return subprocess.call(command, shell=True)"
    assert by_rule["S105"].snippet == 'password = "****"'
    doc = sarif_of(scanner, out)
    assert doc["version"] == "2.1.0"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]}
    assert uris == {"app.py", "db.py"}
    _no_leak(json.dumps(doc))


def test_ruff_runs_isolated_from_the_repository_config(source: Path, tmp_path: Path) -> None:
    """A scanned repository cannot switch the security rules off with its own ruff config."""
    (source / "pyproject.toml").write_text('[tool.ruff.lint]\nignore = ["S"]\nexclude = ["*.py"]\n')
    out = run_scanner(RuffSecurity(), source, tmp_path / "scratch")
    assert ("S602", "app.py", 9) in located(out)
    assert [w["code"] for w in out.warnings] == ["tool_config_ignored"]
    assert out.details["suppressions"] == {"config_files_ignored": ["pyproject.toml"]}


def test_a_manifest_cannot_make_ruff_honour_noqa(source: Path, tmp_path: Path) -> None:
    """The tool config that once chose whether `# noqa` applied is gone: noqa never applies."""
    app = source / "app.py"
    app.write_text(app.read_text().replace("shell=True)", "shell=True)  # noqa: S602"))
    out = run_scanner(RuffSecurity(), source, tmp_path / "scratch", config={"honor_noqa": True})
    flagged = next(f for f in out.findings if (f.rule_id, f.line) == ("S602", 9))
    assert flagged.properties["suppression_ignored"] is True
    assert out.details["suppressions"]["inline_suppressions_ignored"] == {"app.py": 1}


def test_semgrep_project_rules(source: Path, tmp_path: Path) -> None:
    scanner = Semgrep()
    _installed(scanner)
    assert {p.name for p in rule_files()} >= {"injection.yml", "deserialisation.yml", "crypto.yml", "tls.yml",
                                              "credentials.yml"}
    lines: list[str] = []
    out = run_scanner(scanner, source, tmp_path / "scratch", lines=lines)
    assert {("subprocess-shell-with-input", "app.py", 9), ("unsafe-deserialisation", "app.py", 14),
            ("hardcoded-credential-assignment", "app.py", 19), ("sql-built-from-strings", "db.py", 13),
            ("yaml-unsafe-load", "db.py", 18), ("dynamic-code-execution", "db.py", 22),
            ("weak-hash", "db.py", 26), ("tls-verification-disabled", "db.py", 30),
            ("os-command-with-input", "db.py", 34), ("hardcoded-credential-assignment", "settings.py", 4),
            ("hardcoded-cloud-key", "settings.py", 5)} == located(out)
    sev = {f.rule_id: f.severity for f in out.findings}
    assert sev["hardcoded-cloud-key"] == "critical" and sev["sql-built-from-strings"] == "high"
    assert sev["weak-hash"] == "medium"
    cwe = {f.rule_id: f.properties["cwe"] for f in out.findings}
    assert cwe["sql-built-from-strings"].startswith("CWE-89")
    _no_leak(sarif_text(scanner, out))
    _no_leak("\n".join(lines))


def test_semgrep_command_is_offline_and_uses_only_project_rules(tmp_path: Path) -> None:
    from workers.scanners.base import ToolContext

    argv = Semgrep().command(ToolContext(tmp_path, tmp_path, {}, tmp_path))
    assert "--metrics=off" in argv and "--disable-version-check" in argv
    # no .semgrepignore, .gitignore or nosemgrep comment of the repository decides what is found
    assert {"--x-ignore-semgrepignore-files", "--no-git-ignore", "--disable-nosem"} <= set(argv)
    configs = [argv[i + 1] for i, a in enumerate(argv) if a == "--config"]
    assert configs and all(Path(c).is_file() and Path(c).parent == rule_files()[0].parent for c in configs)


def test_detect_secrets_masks_every_value(source: Path, tmp_path: Path) -> None:
    scanner = DetectSecrets()
    _installed(scanner)
    lines: list[str] = []
    out = run_scanner(scanner, source, tmp_path / "scratch", lines=lines)
    assert {("secret-keyword", "app.py", 19), ("secret-keyword", "settings.py", 4),
            ("aws-access-key", "settings.py", 5)} <= located(out)
    by_rule = {f.rule_id: f for f in out.findings}
    assert by_rule["aws-access-key"].severity == "critical"
    assert by_rule["aws-access-key"].snippet == 'AWS_ACCESS_KEY_ID = "****"'
    _no_leak(sarif_text(scanner, out))
    _no_leak("\n".join(lines))
    assert not (tmp_path / "scratch" / scanner.id / "blobs").exists()


@pytest.fixture()
def history_repo(tmp_path: Path) -> dict[str, str]:
    """A repository whose first commit held a token that a later commit removed."""
    repo = make_repo(tmp_path / "repos", "history", {"app.py": "print('hello')\n"})
    added = commit_files(repo, {"deploy.py": f'GITHUB_TOKEN = "{HISTORY_SECRET}"\n'}, "add deploy")
    (repo / "deploy.py").unlink()
    removed = commit_files(repo, {"settings.py": (FIXTURE / "settings.py").read_text()}, "remove token")
    return {"path": str(repo), "added": added, "removed": removed}


def test_detect_secrets_history_finds_removed_secrets_only(history_repo: dict[str, str], tmp_path: Path) -> None:
    scanner = DetectSecretsHistory()
    _installed(scanner)
    assert scanner.needs_history and not DetectSecrets().needs_history
    lines: list[str] = []
    out = run_scanner(scanner, Path(history_repo["path"]), tmp_path / "scratch", lines=lines)
    # only the removed file: the settings.py secrets are still in the tree, left to the tree scan
    assert ("github-token", "deploy.py", 1) in located(out)
    assert {f.path for f in out.findings} == {"deploy.py"}
    assert all(f.properties["commit"] == history_repo["added"] for f in out.findings)
    found = next(f for f in out.findings if f.rule_id == "github-token")
    assert found.properties["commit"] == history_repo["added"]
    assert found.severity == "high" and found.snippet == 'GITHUB_TOKEN = "****"'
    text = sarif_text(scanner, out)
    _no_leak(text, (HISTORY_SECRET, *PLANTED_SECRETS))
    _no_leak("\n".join(lines), (HISTORY_SECRET,))
    # the tree scan of the same checkout does not see it
    tree = run_scanner(DetectSecrets(), Path(history_repo["path"]), tmp_path / "scratch2")
    assert "deploy.py" not in {f.path for f in tree.findings}


def test_detect_secrets_history_notes_a_shallow_clone(history_repo: dict[str, str], tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{history_repo['path']}", str(shallow))
    out = run_scanner(DetectSecretsHistory(), shallow, tmp_path / "scratch")
    assert out.findings == []
    assert any("shallow" in note for note in out.notes)


def test_detect_secrets_history_without_a_repository(source: Path, tmp_path: Path) -> None:
    out = run_scanner(DetectSecretsHistory(), source, tmp_path / "scratch")
    assert out.findings == [] and any("not a git repository" in note for note in out.notes)


def _shifted(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    for path in dest.rglob("*.py"):
        path.write_text("# moved\n\n\n" + path.read_text())
    return dest


@pytest.mark.parametrize("scanner", [RuffSecurity(), Semgrep(), DetectSecrets()], ids=lambda s: s.id)
def test_fingerprints_survive_moved_lines(scanner: Scanner, source: Path, tmp_path: Path) -> None:
    _installed(scanner)
    first = sarif_of(scanner, run_scanner(scanner, source, tmp_path / "s1"))["runs"][0]["results"]
    again = sarif_of(scanner, run_scanner(scanner, source, tmp_path / "s2"))["runs"][0]["results"]
    moved_src = _shifted(source, tmp_path / "moved")
    moved = sarif_of(scanner, run_scanner(scanner, moved_src, tmp_path / "s3"))["runs"][0]["results"]

    def prints(results: list[dict]) -> dict[str, int]:
        return {r["partialFingerprints"]["certusFindingHash/v1"]:
                r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}

    assert prints(first) == prints(again) and len(prints(first)) == len(first) >= 3
    assert set(prints(moved)) == set(prints(first))
    assert all(prints(moved)[fp] == line + 3 for fp, line in prints(first).items())


def test_mask_literals() -> None:
    assert mask_literals('x = "abc" + \'d\'') == 'x = "****" + \'****\''
    assert mask_literals('f(password=b"pw")') == 'f(password=b"****")'
    assert mask_literals(None) is None


def test_builtin_profiles_name_the_sast_tools_that_exist() -> None:
    registered = all_scanners()
    ours = {"bandit", "ruff", "semgrep", "detect-secrets", "detect-secrets-history"}
    assert ours <= set(registered)
    light = set(BUILTIN_PROFILES["light"].tools)
    thorough = set(BUILTIN_PROFILES["thorough"].tools)
    assert {"bandit", "ruff", "detect-secrets"} <= light and not {"semgrep", "detect-secrets-history"} & light
    assert ours <= thorough
    for profile in BUILTIN_PROFILES.values():
        assert {t for t in profile.tools if t in ours} <= set(registered)


def test_versions_come_from_the_installed_tools() -> None:
    import re

    for scanner in (RuffSecurity(), Semgrep(), DetectSecrets(), DetectSecretsHistory()):
        _installed(scanner)
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", scanner.version()), scanner.id
