"""A scan end to end on real components: API (gunicorn) -> Celery worker -> Redis Stream -> WebSocket."""

from __future__ import annotations

import json
import threading

from tests.support.ws import StreamResult, read_stream


def test_scan_streams_and_succeeds_with_bandit_findings(service, vulnerable_repo):
    resp = service.submit(git_url=vulnerable_repo["url"], profile="smoke", requested_by="ci@example")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    test_id = body["test_id"]
    assert resp.headers["Location"] == f"/v1/security-scans/{test_id}"
    assert body["status"] == "QUEUED" and body["profile"] == "smoke"
    assert body["stream_url"] == f"/v1/security-scans/{test_id}/stream"

    stream = read_stream(headers=service.ws_headers, url=service.ws_url(body["stream_url"]))
    assert stream.close_code == 1000
    types = stream.types
    assert types[-1] == "scan_complete"
    # phase, then tool_start, log lines, tool_complete, then scan_complete, in that order
    first_tool = types.index("tool_start")
    assert "phase" in types[:first_tool]
    assert "log" in types[first_tool:types.index("tool_complete")]
    assert types.index("tool_complete") < types.index("scan_complete")
    complete = stream.events[-1]
    assert complete["status"] == "SUCCEEDED"
    assert complete["summary"]["by_tool"]["bandit"]["high"] >= 1
    ids = [e["id"] for e in stream.events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == len(ids)
    tool_complete = next(e for e in stream.events if e["type"] == "tool_complete")
    assert tool_complete["tool"] == "bandit" and tool_complete["exit_code"] == 1 and tool_complete["findings"] >= 3

    record = service.status(test_id)
    assert record["status"] == "SUCCEEDED"
    assert record["resolved_commit"] == vulnerable_repo["first"]
    assert [p["name"] for p in record["phases"]] == ["clone", "manifest", "scan"]
    assert all(p["status"] == "succeeded" and p["duration_s"] is not None for p in record["phases"])
    assert record["manifest_digest"] and record["completed_at"] and record["started_at"]

    bundle = service.artifact_root / test_id
    for rel in ("scan.json", "manifest.json", "manifest-info.json", "summary.json",
                "reports/sast/bandit.sarif.json", "logs/runner.log", "logs/stream.jsonl"):
        assert (bundle / rel).is_file(), rel
    sarif = json.loads((bundle / "reports/sast/bandit.sarif.json").read_text())
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    rules = {r["ruleId"] for r in results}
    assert {"B602", "B301", "B105"} <= rules
    shell = next(r for r in results if r["ruleId"] == "B602")
    assert shell["level"] == "error"
    assert shell["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app.py"
    assert shell["partialFingerprints"]
    scan_json = json.loads((bundle / "scan.json").read_text())
    assert scan_json["source"]["resolved_commit"] == vulnerable_repo["first"]
    assert scan_json["status"] == "SUCCEEDED"
    history = [json.loads(line) for line in (bundle / "logs/stream.jsonl").read_text().splitlines()]
    assert history[-1]["type"] == "scan_complete" and history[-1]["id"] == complete["id"]
    assert [e["id"] for e in history] == ids


def test_stream_through_the_other_replica_and_late_subscribers(service, vulnerable_repo):
    resp = service.submit(replica=0, git_url=vulnerable_repo["url"], profile="smoke")
    test_id = resp.json()["test_id"]
    path = f"/v1/security-scans/{test_id}/stream"
    results: list[StreamResult] = []

    def watch(replica: int) -> None:
        results.append(read_stream(headers=service.ws_headers, url=service.ws_url(path, replica)))

    early = [threading.Thread(target=watch, args=(r,)) for r in (0, 1)]
    for t in early:
        t.start()
    for t in early:
        t.join(120)
    # after completion: the whole history, then close
    late = read_stream(headers=service.ws_headers, url=service.ws_url(path, 1))
    results.append(late)
    assert len(results) == 3
    reference = [e["id"] for e in results[0].events]
    for result in results:
        assert result.close_code == 1000
        assert [e["id"] for e in result.events] == reference
        assert result.types[-1] == "scan_complete" and result.types.count("scan_complete") == 1
    # the events endpoint serves the same events, and resumes after an id
    page = service.http.get(service.url(f"{path[:-7]}/events", 1), params={"limit": 3}).json()
    assert [e["id"] for e in page["events"]] == reference[:3] and not page["complete"]
    rest = service.http.get(service.url(f"{path[:-7]}/events"), params={"after": page["next_after"]}).json()
    assert [e["id"] for e in rest["events"]] == reference[3:] and rest["complete"]
    resumed = read_stream(headers=service.ws_headers, url=service.ws_url(f"{path}?after={reference[2]}", 0))
    assert [e["id"] for e in resumed.events] == reference[3:]


def test_branch_and_commit_are_resolved(service, vulnerable_repo):
    feature = service.submit(git_url=vulnerable_repo["url"], branch="feature", profile="smoke").json()
    pinned = service.submit(git_url=vulnerable_repo["url"], branch="feature",
                            commit=vulnerable_repo["first"][:10].upper(), profile="smoke").json()
    feature_rec = service.wait_done(feature["test_id"])
    pinned_rec = service.wait_done(pinned["test_id"])
    assert feature_rec["status"] == "SUCCEEDED", feature_rec["errors"]
    assert feature_rec["resolved_commit"] == vulnerable_repo["feature_head"]
    assert feature_rec["summary"]["by_tool"]["bandit"]["high"] >= 2  # extra.py adds os.system
    assert pinned_rec["status"] == "SUCCEEDED", pinned_rec["errors"]
    assert pinned_rec["resolved_commit"] == vulnerable_repo["first"]


def test_failing_sources_end_failed_with_a_code(service, vulnerable_repo, git_server):
    cases = {
        "repository_not_found": {"git_url": git_server.url("no-such-repo")},
        "branch_not_found": {"git_url": vulnerable_repo["url"], "branch": "no-such-branch"},
        "commit_not_found": {"git_url": vulnerable_repo["url"], "commit": "deadbeefdeadbeef"},
    }
    ids = {code: service.submit(profile="smoke", **payload).json()["test_id"] for code, payload in cases.items()}
    for code, test_id in ids.items():
        record = service.wait_done(test_id)
        assert record["status"] == "FAILED", (code, record)
        assert record["errors"][0]["code"] == code, record["errors"]
        assert record["errors"][0]["message"]
        stream = read_stream(headers=service.ws_headers, url=service.ws_url(f"/v1/security-scans/{test_id}/stream"))
        assert stream.types[-1] == "scan_complete" and stream.events[-1]["status"] == "FAILED"
        assert "error" in stream.types
        assert (service.artifact_root / test_id / "scan.json").is_file()


def test_unknown_ids(service):
    resp = service.http.get(service.url("/v1/security-scans/test_000000000000"))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "scan_not_found"
    resp = service.http.get(service.url("/v1/security-scans/../../etc/passwd"))
    assert resp.status_code == 404 and resp.json()["error"]["code"]
    stream = read_stream(headers=service.ws_headers, url=service.ws_url("/v1/security-scans/test_000000000000/stream"))
    assert stream.close_code == 4404 and stream.events == []
    resp = service.http.get(service.url("/v1/security-scans/test_000000000000/events"))
    assert resp.status_code == 404


def test_validation_errors_name_each_field_and_enqueue_nothing(service, redis_client):
    before = redis_client.zcard("ca:idx:all")
    resp = service.http.post(service.url("/v1/security-scans"), json={
        "workspace_id": "Bad_WS", "component_id": "ok", "assessment_id": "-x", "commit": "xyz",
        "profile": "nope", "manifest": {}, "manifest_uri": "https://example.invalid/m.json",
        "manifest_signature_uri": "ftp://x/y"})
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["code"] == "validation_error"
    for name in ("workspace_id", "assessment_id", "commit", "git_url", "manifest_uri", "manifest",
                 "manifest_signature_uri"):
        assert name in err["fields"], name
    resp = service.http.post(service.url("/v1/security-scans"), data="not json", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"
    resp = service.http.post(service.url("/v1/security-scans"), data="{bad",
                             headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    assert redis_client.zcard("ca:idx:all") == before
    assert redis_client.llen("scans") == 0


def test_list_filters_and_paginates_newest_first(service, vulnerable_repo):
    ids = [service.submit(workspace_id="ws-list", component_id=f"c{i % 2}", git_url=vulnerable_repo["url"],
                          profile="smoke").json()["test_id"] for i in range(5)]
    for test_id in ids:
        service.wait_done(test_id)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"workspace_id": "ws-list", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = service.http.get(service.url("/v1/security-scans"), params=params).json()
        seen += [item["test_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    c1 = service.http.get(service.url("/v1/security-scans"),
                      params={"workspace_id": "ws-list", "component_id": "c1"}).json()
    assert [i["test_id"] for i in c1["items"]] == [ids[3], ids[1]]
    done = service.http.get(service.url("/v1/security-scans"), params={"workspace_id": "ws-list",
                                                                   "status": "QUEUED"}).json()
    assert done["items"] == []
    bad = service.http.get(service.url("/v1/security-scans"), params={"cursor": "!!!"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


def test_service_endpoints(service):
    health = service.http.get(service.url("/health")).json()
    assert health["status"] == "ok" and isinstance(health["security_module_available"], bool)
    assert service.http.get(service.url("/ready")).status_code == 200
    stats = service.http.get(service.url("/stats")).json()
    assert stats["workers_online"] >= 2
    assert set(stats["scans"]) == {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}
    assert set(stats["queue_depth"]) == {"scans", "uploads"}


def test_cancel_of_finished_scan_is_409(service, vulnerable_repo):
    test_id = service.submit(git_url=vulnerable_repo["url"], profile="smoke").json()["test_id"]
    service.wait_done(test_id)
    resp = service.http.post(service.url(f"/v1/security-scans/{test_id}/cancel"))
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "scan_finished"
