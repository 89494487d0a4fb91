"""hadolint, shellcheck, zizmor and checkov, each run for real on the vulnerable-deps fixture."""

from __future__ import annotations

import pytest

from tests.support.scanrun import copy_fixture, run_scanner
from workers import sarif
from workers.scanners.base import Scanner
from workers.scanners.checkov import Checkov
from workers.scanners.hadolint import Hadolint
from workers.scanners.shellcheck import Shellcheck
from workers.scanners.zizmor import Zizmor


@pytest.fixture()
def source(tmp_path):
    return copy_fixture("vulnerable-deps", tmp_path / "src")


def _run(scanner: Scanner, source, tmp_path):
    assert scanner.unavailable_reason() is None, "run `make tools` first"
    output, result = run_scanner(scanner, source, tmp_path / "scratch")
    return output, result


def _by_rule(findings):
    out = {}
    for f in findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


def test_hadolint_finds_dockerfile_problems(source, tmp_path):
    output, _ = _run(Hadolint(), source, tmp_path)
    rules = _by_rule(output.findings)
    assert {"DL3007", "DL3008", "DL3009", "DL3003"} <= set(rules)
    latest = rules["DL3007"][0]
    assert latest.path == "Dockerfile" and latest.line == 1 and latest.severity == "medium"
    assert latest.snippet == "FROM ubuntu:latest"
    assert rules["DL3009"][0].severity == "low"  # hadolint 'info'
    assert output.details == {"files": 1}


def test_shellcheck_finds_script_problems(source, tmp_path):
    output, _ = _run(Shellcheck(), source, tmp_path)
    rules = _by_rule(output.findings)
    assert {"SC2164", "SC2086", "SC2006", "SC2115"} <= set(rules)
    cd = rules["SC2164"][0]
    assert cd.path == "deploy.sh" and cd.line == 4 and cd.severity == "medium" and cd.snippet == "cd $TARGET"
    assert all(f.severity == "low" for f in rules["SC2086"])
    assert rules["SC2006"][0].severity == "info"


def test_zizmor_finds_workflow_problems_offline(source, tmp_path):
    output, result = _run(Zizmor(), source, tmp_path)
    assert "--offline" in result.argv
    rules = _by_rule(output.findings)
    assert {"zizmor/template-injection", "zizmor/dangerous-triggers", "zizmor/unpinned-uses"} <= set(rules)
    injection = rules["zizmor/template-injection"][0]
    assert injection.path == ".github/workflows/ci.yml" and injection.severity == "high"
    assert injection.line == 12


def test_checkov_finds_dockerfile_and_workflow_problems_offline(source, tmp_path):
    output, result = _run(Checkov(), source, tmp_path)
    assert "--skip-download" in result.argv and not any("api-key" in a for a in result.argv)
    rules = _by_rule(output.findings)
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7", "CKV_GHA_2"} <= set(rules)
    latest = rules["CKV_DOCKER_7"][0]
    assert latest.path == "Dockerfile" and latest.line == 1 and latest.severity == "medium"
    assert rules["CKV_GHA_2"][0].path == ".github/workflows/ci.yml"
    assert output.details["frameworks"]["dockerfile"]["failed"] >= 3


@pytest.mark.parametrize("scanner", [Hadolint(), Shellcheck(), Zizmor()], ids=lambda s: s.id)
def test_nothing_to_scan_is_a_clean_run(scanner, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("nothing here\n")
    output, _ = run_scanner(scanner, empty, tmp_path / "scratch")
    assert output.findings == [] and output.details == {"files": 0}


def test_links_out_of_the_tree_are_not_scanned(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.sh").write_text("#!/bin/sh\ncd $HOME\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "linked.sh").symlink_to(outside / "evil.sh")
    (src / "linkdir").symlink_to(outside)
    output, _ = run_scanner(Shellcheck(), src, tmp_path / "scratch")
    assert output.findings == []


def test_fingerprints_are_stable_across_runs_and_line_moves(source, tmp_path):
    first, _ = run_scanner(Hadolint(), source, tmp_path / "one")
    text = (source / "Dockerfile").read_text()
    (source / "Dockerfile").write_text("# a comment moves every line down\n" + text)
    second, _ = run_scanner(Hadolint(), source, tmp_path / "two")

    def prints(findings):
        return {(f.rule_id, fp) for f, fp in zip(findings, sarif.fingerprints(findings))}

    assert prints(first.findings) == prints(second.findings)
    assert {f.line for f in second.findings if f.rule_id == "DL3007"} == {2}


def test_versions_come_from_the_pinned_tools():
    assert Hadolint().version() == "2.15.1"
    assert Shellcheck().version() == "0.11.0"
    assert Zizmor().version() == "1.32.0"
    assert Checkov().version() == "3.3.30"


@pytest.mark.parametrize("module", ["hadolint", "shellcheck", "zizmor", "checkov", "sbom"])
def test_a_missing_tool_is_a_skip_reason(module, monkeypatch):
    from workers.scanners.registry import all_scanners

    scanner = all_scanners()[module]
    monkeypatch.setattr(type(scanner), "executable", lambda self: None)
    reason = scanner.unavailable_reason()
    assert reason and "not installed" in reason


def test_a_repository_checkov_config_cannot_load_code_or_hide_findings(source, tmp_path):
    marker = tmp_path / "imported"
    (source / "evil").mkdir()
    (source / "evil" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (source / "evil" / "check.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (source / ".checkov.yaml").write_text("external-checks-dir:\n  - ./evil\nskip-check:\n  - CKV_DOCKER_7\n")
    output, _ = run_scanner(Checkov(), source, tmp_path / "scratch")
    assert not marker.exists()
    assert "CKV_DOCKER_7" in {f.rule_id for f in output.findings}


def test_a_repository_shellcheckrc_cannot_follow_sources_outside(tmp_path):
    outside = tmp_path / "outside.sh"
    outside.write_text("echo $UNQUOTED_OUTSIDE\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / ".shellcheckrc").write_text("external-sources=true\n")
    (src / "main.sh").write_text(f"#!/bin/bash\n# shellcheck source={outside}\nsource {outside}\necho ok\n")
    output, result = run_scanner(Shellcheck(), src, tmp_path / "scratch")
    assert "--norc" in result.argv
    assert all(f.path == "main.sh" for f in output.findings)


def test_reported_paths_are_made_relative_or_dropped(tmp_path):
    from workers.scanners.sourcefiles import relative

    root = tmp_path / "repo"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text("x")
    (root / "Dockerfile").write_text("x")
    assert relative(root, "Dockerfile") == "Dockerfile"
    assert relative(root, "./Dockerfile") == "Dockerfile"
    assert relative(root, "/Dockerfile") == "Dockerfile"  # checkov's root-relative form
    assert relative(root, str(root / "Dockerfile")) == "Dockerfile"
    assert relative(root, "tests/fixtures/x/.github/workflows/ci.yml") == ".github/workflows/ci.yml"
    assert relative(root, "/etc/passwd") is None
    assert relative(root, "../outside") is None
    assert relative(root, None) is None


def test_shellcheck_disable_directives_are_blanked_in_place(tmp_path):
    from workers.scanners.shellcheck import _without_disable_directives

    src = tmp_path / "src"
    src.mkdir()
    script = "#!/bin/bash\n# shellcheck disable=SC2164 shell=bash # why\ncd $T # shellcheck disable=SC2086\necho ok\n"
    (src / "run.sh").write_text(script)
    (src / "plain.sh").write_text("#!/bin/sh\n# shellcheck source=lib.sh\n. ./lib.sh\n")
    copies, changed = _without_disable_directives(src, ["run.sh", "plain.sh"], tmp_path / "copies")
    assert set(copies) == {"run.sh"} and changed == {"run.sh": 2}
    copy = (tmp_path / "copies" / "run.sh").read_text()
    assert "disable" not in copy and "shell=bash # why" in copy and "cd $T #" in copy
    assert [len(line) for line in copy.splitlines()] == [len(line) for line in script.splitlines()]
    assert (src / "run.sh").read_text() == script  # the checkout is never written


def test_repository_configs_do_not_hide_hadolint_or_zizmor_findings(source, tmp_path):
    (source / ".hadolint.yaml").write_text("ignored:\n  - DL3007\n")
    (source / ".github" / "zizmor.yml").write_text("rules:\n  template-injection:\n    disable: true\n")
    (source / "zizmor.yml").write_text("rules:\n  template-injection:\n    disable: true\n")
    hadolint, _ = run_scanner(Hadolint(), source, tmp_path / "h")
    zizmor, _ = run_scanner(Zizmor(), source, tmp_path / "z")
    assert "DL3007" in {f.rule_id for f in hadolint.findings}
    assert "zizmor/template-injection" in {f.rule_id for f in zizmor.findings}
