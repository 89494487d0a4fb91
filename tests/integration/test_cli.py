"""The real ``certus-assurance`` command against the real service: it is a CI gate, so its exit codes
and its error messages are the behaviour under test."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli, service_cli

GATE_MANIFEST = {"product": "billing", "version": "1.4",
                 "profiles": [{"name": "gate", "tools": ["bandit"], "thresholds": {"high": 0}}]}


@pytest.fixture()
def cli(service):
    return service_cli(service)


def _submit_args(repo_url: str, *extra: str) -> list[str]:
    return ["scan", "--workspace", "ws-cli", "--component", "billing", "--assessment", "rel-1",
            "--git-url", repo_url, *extra]


def test_scan_follow_succeeds_and_shows_progress(cli, vulnerable_repo):
    result = cli(*_submit_args(vulnerable_repo["url"], "--profile", "smoke", "--follow"))
    assert result.code == 0, (result.out, result.err)
    out = result.out
    assert "▶ clone" in out and "▶ scan" in out
    assert "⋯ bandit started" in out
    assert "bandit exit 1" in out and "[tools: 1 done, 0 running]" in out
    assert "bandit | " in out  # the tool's own output, streamed
    assert "■ scan SUCCEEDED" in out and "policy passed" in out
    assert "Traceback" not in result.err


def test_scan_follow_policy_failure_exits_1(cli, vulnerable_repo, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(GATE_MANIFEST))
    result = cli(*_submit_args(vulnerable_repo["url"], "--profile", "gate", "--manifest", str(manifest),
                               "--follow", "--quiet"))
    assert result.code == 1, (result.out, result.err)
    assert "policy FAILED" in result.out and "exceed the threshold of 0" in result.out
    assert "bandit | " not in result.out  # --quiet hides tool output
    # the same scan reported without gating
    test_id = result.out.split("submitted ", 1)[1].split()[0]
    status = cli("status", test_id, "--json")
    assert status.code == 0 and status.json()["policy"]["passed"] is False


def test_scan_from_file_json_output_and_failure_exits_3(cli, vulnerable_repo, tmp_path):
    body = tmp_path / "scan.json"
    body.write_text(json.dumps({"workspace_id": "ws-cli", "component_id": "billing", "assessment_id": "rel-2",
                                "git_url": vulnerable_repo["url"], "branch": "no-such-branch", "profile": "smoke"}))
    result = cli("scan", "--file", str(body), "--follow", "--json")
    assert result.code == 3, (result.out, result.err)
    lines = result.json_lines()
    assert lines[-1]["type"] == "result" and lines[-1]["status"] == "FAILED" and lines[-1]["exit_code"] == 3
    assert lines[-2]["type"] == "scan_complete"
    assert any(e["type"] == "error" and e["code"] == "branch_not_found" for e in lines)


def test_status_list_logs_resume(cli, vulnerable_repo):
    created = cli(*_submit_args(vulnerable_repo["url"], "--profile", "smoke", "--assessment", "rel-3", "--json"))
    assert created.code == 0, created.err
    test_id = created.json()["test_id"]
    waited = cli("status", test_id, "--wait")
    assert waited.code == 0 and f"{test_id}  SUCCEEDED" in waited.out
    assert "phases:" in waited.out and "clone succeeded" in waited.out and "bandit" in waited.out

    listing = cli("list", "--workspace", "ws-cli", "--json", "--all")
    assert listing.code == 0 and test_id in [i["test_id"] for i in listing.json()["items"]]
    table = cli("list", "--workspace", "ws-cli", "--status", "SUCCEEDED")
    assert test_id in table.out and "TEST ID" in table.out

    replay = cli("logs", test_id, "--json")
    events = replay.json_lines()
    assert replay.code == 0 and events[-1]["type"] == "scan_complete"
    middle = events[len(events) // 2]["id"]
    resumed = cli("logs", test_id, "--json", "--after", middle).json_lines()
    assert resumed == events[len(events) // 2 + 1:]
    followed = cli("logs", test_id, "--follow", "--after", middle, "--json").json_lines()
    assert [e["id"] for e in followed[:-1]] == [e["id"] for e in resumed]
    polled = cli("logs", test_id, "--follow", "--transport", "poll", "--json").json_lines()
    assert [e["id"] for e in polled[:-1]] == [e["id"] for e in events]


def test_cancel(cli, vulnerable_repo):
    created = cli(*_submit_args(vulnerable_repo["url"], "--profile", "light", "--assessment", "rel-4", "--json"))
    test_id = created.json()["test_id"]
    cancelled = cli("cancel", test_id)
    if cancelled.code == 5:  # the scan beat us to the finish line: the API says so, cleanly
        assert "scan_finished" in cancelled.err
        return
    assert cancelled.code == 0, cancelled.err
    assert test_id in cancelled.out
    final = cli("status", test_id, "--wait")
    assert final.code == 4 and "CANCELLED" in final.out
    again = cli("cancel", test_id)
    assert again.code == 5 and "409 scan_finished" in again.err and "Traceback" not in again.err


def test_api_errors_are_clean(cli, vulnerable_repo):
    missing = cli("status", "test_000000000000")
    assert missing.code == 5 and "error 404 scan_not_found: no such scan" in missing.err
    assert "Traceback" not in missing.err and "request id" in missing.err
    invalid = cli("scan", "--workspace", "Bad Space", "--component", "c", "--assessment", "a",
                  "--git-url", "ext::sh -c id")
    assert invalid.code == 5 and "422 validation_error" in invalid.err
    assert "workspace_id:" in invalid.err and "git_url:" in invalid.err
    usage = cli("scan", "--git-url", vulnerable_repo["url"])
    assert usage.code == 2 and "missing --workspace" in usage.err
    follow_missing = cli("logs", "test_000000000000", "--follow")
    assert follow_missing.code == 5 and "scan_not_found" in follow_missing.err
    down = run_cli("list", url="http://127.0.0.1:9", timeout=60)
    assert down.code == 6 and "cannot reach http://127.0.0.1:9" in down.err and "Traceback" not in down.err


def test_keys_create_list_revoke(cli, service):
    created = cli("keys", "create", "--role", "submitter", "--workspace", "ws-cli", "--workspace", "ws-two",
                  "--name", "ci runner", "--json")
    assert created.code == 0, created.err
    key = created.json()
    assert key["role"] == "submitter" and key["workspaces"] == ["ws-cli", "ws-two"] and key["key"].startswith("ca_")
    as_new = run_cli("list", "--workspace", "ws-two", url=service.base_url, api_key=key["key"])
    assert as_new.code == 0, as_new.err  # the new key works at once
    listed = cli("keys", "list")
    assert listed.code == 0 and key["key_id"] in listed.out and "ci runner" in listed.out
    assert key["key"] not in listed.out
    plain = cli("keys", "create", "--role", "reader", "--workspace", "ws-cli")
    assert plain.code == 0 and plain.out.strip().startswith("ca_") and "shown once" in plain.err
    forbidden = run_cli("keys", "list", url=service.base_url, api_key=key["key"])
    assert forbidden.code == 5 and "403 forbidden" in forbidden.err and "Traceback" not in forbidden.err
    revoked = cli("keys", "revoke", key["key_id"])
    assert revoked.code == 0 and f"revoked {key['key_id']}" in revoked.out
    after = run_cli("list", url=service.base_url, api_key=key["key"])
    assert after.code == 5 and "401 unauthorized" in after.err
    again = cli("keys", "revoke", key["key_id"])
    assert again.code == 5 and "404 key_not_found" in again.err
    bad = cli("keys", "create", "--role", "reader", "--workspace", "Not A Workspace")
    assert bad.code == 5 and "422 validation_error" in bad.err and "workspaces" in bad.err
    usage = cli("keys", "create", "--role", "root", "--workspace", "ws-cli")
    assert usage.code == 2 and "invalid choice" in usage.err


def test_artifacts_list_and_download(cli, service, vulnerable_repo, tmp_path):
    created = cli(*_submit_args(vulnerable_repo["url"], "--profile", "smoke", "--assessment", "rel-5", "--json"))
    test_id = created.json()["test_id"]
    assert cli("status", test_id, "--wait").code == 0
    probe = service.http.get(service.url(f"/v1/security-scans/{test_id}/artifacts"), timeout=10)
    if probe.status_code == 404 and probe.json()["error"]["code"] == "not_found":
        pytest.skip("the artifacts endpoint is not part of this build")
    listing = cli("artifacts", test_id)
    assert listing.code == 0 and "reports/sast/bandit.sarif.json" in listing.out
    out = tmp_path / "bundle"
    got = cli("artifacts", test_id, "--out", str(out))
    assert got.code == 0, got.err
    local = out / "reports/sast/bandit.sarif.json"
    assert local.read_bytes() == (service.artifact_root / test_id / "reports/sast/bandit.sarif.json").read_bytes()
    assert json.loads(local.read_text())["version"] == "2.1.0"
