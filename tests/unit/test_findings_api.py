"""The findings endpoints: the service called directly (a caller and no Flask anywhere), then the
real app through its edge, each on SQLite and on the tests' own PostgreSQL. Tenant isolation, who
may triage, the rules of triage, the history, expiry by the store's clock, the diff of two scans
and keyset paging."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.errors import STATUS
from app.services.errors import Forbidden, Invalid, NotFound, Unauthenticated, Unavailable
from app.services.findings import KIND, FindingsService
from stack.ports import free_port
from tasks.api_keys import ROLES, KeyStore, Principal
from tasks.db import make_engine, upgrade
from tasks.findings import FindingInput, ScanInfo
from tasks.findings_store import FindingsStore
from tasks.states import ScanStatus, Severity
from tests.support.edge import auth
from tests.support.postgres import Clock

# database_url (SQLite and PostgreSQL), postgres_server and store
pytest_plugins = ["tests.support.postgres"]

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
BASE, HEAD, OTHER = "test_00000000000a", "test_00000000000b", "test_00000000000c"
SEVERITIES = list(Severity)
ACME = {"workspace_id": "acme", "component_id": "billing"}


def principal(role: str, workspaces: tuple[str, ...] = ("acme",), name: str = "alice") -> Principal:
    key_id = f"{ROLES.index(role):x}{len(workspaces):x}".ljust(12, "0")
    return Principal(key_id, role, frozenset(workspaces), name)


ADMIN = principal("admin")
TRIAGER = principal("triager", name="sec-review")
READER = principal("reader")
BETA_ADMIN = principal("admin", ("beta",), "beta-admin")
EVERYONE = principal("admin", ("*",), "root")




def finding(n: int, severity: Severity | None = None, *, tool: str = "bandit") -> FindingInput:
    return FindingInput(fingerprint=f"fp{n:05d}", tool=tool, rule_id=f"B{n % 7}",
                        severity=severity or SEVERITIES[n % 5], path=f"src/m{n % 10}.py", line=n + 1,
                        message=f"finding number {n}", cwe="CWE-78")


def record(store: FindingsStore, test_id: str, findings: list[FindingInput], *, hours: int = 0,
           baseline: str | None = None, component: str = "billing", workspace: str = "acme") -> None:
    store.record_scan(ScanInfo(test_id=test_id, workspace_id=workspace, component_id=component,
                               status=ScanStatus.SUCCEEDED, created_at=T0 + timedelta(hours=hours), branch="main",
                               commit=f"{hours:x}".rjust(40, "c"), baseline_test_id=baseline,
                               on_baseline_branch=True), findings)


@pytest.fixture()
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture()
def service(store: FindingsStore) -> FindingsService:
    return FindingsService(store)


def two_scans(store: FindingsStore) -> dict[int, int]:
    """BASE sees findings 1, 2, 3; HEAD (against BASE) sees 2, 3 (now critical) and 4. Returns
    finding number -> finding id."""
    record(store, BASE, [finding(1, Severity.HIGH), finding(2, Severity.LOW), finding(3, Severity.MEDIUM)])
    record(store, HEAD, [finding(2, Severity.LOW), finding(3, Severity.CRITICAL), finding(4, Severity.HIGH)],
           hours=1, baseline=BASE)
    items = store.list_findings("acme", "billing", limit=500).items
    return {int(v.fingerprint[2:]): v.id for v in items}


def listing(**query: Any) -> dict[str, Any]:
    return {**ACME, "limit": 50, **query}


# -- the service, without Flask -------------------------------------------------------------------

def test_no_caller_is_refused_and_another_workspace_is_not_found(service, store):
    ids = two_scans(store)
    some = ids[2]
    for call in (lambda p: service.list(p, listing()), lambda p: service.get(p, some),
                 lambda p: service.history(p, some), lambda p: service.diff(p, HEAD, BASE),
                 lambda p: service.triage(p, some, {"state": "false_positive", "reason": "test code"})):
        with pytest.raises(Unauthenticated):
            call(None)
    with pytest.raises(NotFound) as refused:
        service.list(BETA_ADMIN, listing())
    assert refused.value.code == "workspace_not_found"
    # another workspace's finding answers exactly as one that does not exist (or cannot)
    for finding_id in (some, 999_999, 2**63, 0):
        for call in (service.get, service.history):
            with pytest.raises(NotFound) as refused:
                call(BETA_ADMIN if finding_id == some else ADMIN, finding_id)
            assert (refused.value.code, refused.value.message) == ("finding_not_found", f"no finding {finding_id}")
    with pytest.raises(NotFound) as refused:
        service.triage(BETA_ADMIN, some, {"state": "false_positive", "reason": "not ours"})
    assert refused.value.code == "finding_not_found"
    assert service.get(ADMIN, some)["state"] == "open" and service.history(ADMIN, some)["items"] == []
    for head, base in ((HEAD, BASE), (HEAD, "test_ffffffffffff"), ("not-a-test-id", BASE)):
        with pytest.raises(NotFound) as refused:
            service.diff(BETA_ADMIN if head == HEAD and base == BASE else ADMIN, head, base)
        assert refused.value.code == "scan_not_found"
    assert service.list(EVERYONE, listing())["items"] and service.get(EVERYONE, some)["id"] == some


def test_only_triagers_and_admins_triage_and_the_key_is_recorded(service, store):
    ids = two_scans(store)
    body = {"state": "false_positive", "reason": "test fixture, never deployed"}
    for role in ("reader", "submitter", "publisher"):
        with pytest.raises(Forbidden) as refused:
            service.triage(principal(role), ids[2], body)
        assert refused.value.code == "forbidden" and STATUS[refused.value.kind] == 403
    assert service.history(READER, ids[2])["items"] == []
    done = service.triage(TRIAGER, ids[2], body)
    assert (done["state"], done["effective_state"], done["expired"]) == ("false_positive", "false_positive", False)
    assert done["triaged_by"] == f"sec-review (key {TRIAGER.key_id})" and done["triage_reason"] == body["reason"]
    again = service.triage(principal("admin", name=""), ids[2], {"state": "open"})
    assert again["state"] == "open" and again["triaged_by"] == f"key {principal('admin').key_id}"
    assert [(e["actor"], e["from_state"], e["to_state"]) for e in service.history(READER, ids[2])["items"]] == [
        (f"sec-review (key {TRIAGER.key_id})", "open", "false_positive"),
        (f"key {principal('admin').key_id}", "false_positive", "open")]


@pytest.mark.parametrize(("body", "broken"), [
    ({"state": "accepted_risk", "reason": "later", "expires_at": NOW + timedelta(days=9)}, "owner and expires_at"),
    ({"state": "accepted_risk", "reason": "later", "owner": "bob"}, "owner and expires_at"),
    ({"state": "accepted_risk", "owner": "bob", "expires_at": NOW + timedelta(days=9)}, "needs a reason"),
    ({"state": "accepted_risk", "reason": "later", "owner": "bob", "expires_at": NOW - timedelta(seconds=1)},
     "in the future"),
    ({"state": "false_positive", "reason": "  "}, "needs a reason"),
    ({"state": "open", "owner": "bob"}, "no owner or expiry"),
    ({"state": "fixed", "reason": "gone"}, "state must be one of"),
])
def test_a_triage_that_breaks_a_rule_is_422_and_changes_nothing(service, store, body, broken):
    ids = two_scans(store)
    with pytest.raises(Invalid) as refused:
        service.triage(ADMIN, ids[4], body)
    assert refused.value.code == "triage_invalid" and broken in refused.value.message
    assert STATUS[refused.value.kind] == 422
    assert service.get(ADMIN, ids[4])["state"] == "open" and service.history(ADMIN, ids[4])["items"] == []


def test_an_accepted_risk_lapses_at_its_expiry_and_the_history_names_every_change(service, store, clock):
    ids = two_scans(store)
    expires = NOW + timedelta(days=30)
    done = service.triage(ADMIN, ids[4], {"state": "accepted_risk", "reason": "admin console only\nsee SEC-1",
                                          "owner": "alice@example.com", "expires_at": expires})
    assert (done["state"], done["effective_state"], done["expired"]) == ("accepted_risk", "accepted_risk", False)
    assert done["expires_at"] == "2026-04-01T12:00:00Z" and done["triaged_at"] == "2026-03-02T12:00:00Z"

    def open_ids() -> set[int]:
        return {f["id"] for f in service.list(READER, listing(state="open"))["items"]}

    assert ids[4] not in open_ids()
    clock.now = expires  # the moment it passes
    lapsed = service.get(READER, ids[4])
    assert (lapsed["state"], lapsed["effective_state"], lapsed["expired"]) == ("accepted_risk", "open", True)
    assert ids[4] in open_ids()
    assert service.list(READER, listing(state="accepted_risk"))["items"] == []
    # a scan of the baseline branch that no longer sees finding 2 marks it fixed: the history says so
    record(store, OTHER, [finding(3, Severity.CRITICAL), finding(4, Severity.HIGH)], hours=2, baseline=HEAD)
    history = service.history(READER, ids[2])["items"]
    assert [(e["actor"], e["from_state"], e["to_state"], e["scan_test_id"]) for e in history] == [
        ("scan", "open", "fixed", OTHER)]
    (event,) = service.history(READER, ids[4])["items"]
    assert event == {"id": event["id"], "actor": f"alice (key {ADMIN.key_id})", "at": "2026-03-02T12:00:00Z",
                     "from_state": "open", "to_state": "accepted_risk", "reason": "admin console only\nsee SEC-1",
                     "owner": "alice@example.com", "expires_at": "2026-04-01T12:00:00Z", "scan_test_id": None}


def test_the_diff_of_two_scans(service, store):
    ids = two_scans(store)
    diff = service.diff(READER, HEAD, BASE)
    assert (diff["test_id"], diff["against"], diff["component_id"]) == (HEAD, BASE, "billing")
    assert [e["finding_id"] for e in diff["new"]] == [ids[4]]
    assert [e["finding_id"] for e in diff["fixed"]] == [ids[1]]
    assert [(e["finding_id"], e["severity"]) for e in diff["updated"]] == [(ids[3], "critical")]
    assert "unchanged" not in diff
    assert diff["counts"]["new"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}
    assert diff["counts"]["fixed"]["high"] == 1 and diff["counts"]["unchanged"]["low"] == 1
    assert diff["totals"] == {"new": 1, "unchanged": 1, "updated": 1, "fixed": 1}
    assert diff["head"]["commit"] == "1".rjust(40, "c") and diff["base"]["finding_count"] == 3
    assert diff["new"][0] == {"finding_id": ids[4], "fingerprint": "fp00004", "tool": "bandit", "rule_id": "B4",
                              "severity": "high", "path": "src/m4.py", "line": 5, "message": "finding number 4",
                              "cwe": "CWE-78"}
    # without `against`: the baseline the scan was recorded with; the unchanged ones on request
    default = service.diff(READER, HEAD, include_unchanged=True)
    assert default["against"] == BASE and [e["finding_id"] for e in default["unchanged"]] == [ids[2]]
    # the reverse comparison swaps new and fixed
    reverse = service.diff(READER, BASE, HEAD)
    assert [e["finding_id"] for e in reverse["new"]] == [ids[1]] and reverse["totals"]["fixed"] == 1
    with pytest.raises(Invalid) as refused:
        service.diff(READER, BASE)  # recorded without a baseline
    assert refused.value.code == "validation_error" and "against" in (refused.value.fields or {})
    record(store, OTHER, [finding(9)], hours=3, component="ledger")
    with pytest.raises(Invalid) as refused:
        service.diff(READER, OTHER, BASE)
    assert refused.value.code == "scans_not_comparable"


def test_keyset_paging_walks_every_finding_once_in_order(service, store):
    record(store, BASE, [finding(n) for n in range(137)])
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = service.list(READER, listing(limit=25, **({"cursor": cursor} if cursor else {})))
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 6 and len(seen) == 137 and len({f["id"] for f in seen}) == 137
    ranks = [SEVERITIES.index(Severity(f["severity"])) for f in seen]
    assert ranks == sorted(ranks)
    assert all(a["id"] < b["id"] for a, b in zip(seen, seen[1:], strict=False)
               if a["severity"] == b["severity"])
    # filters and the cursor together: two pages of the high and critical findings of src/m1*
    wanted = {f["id"] for f in seen if f["severity"] in ("critical", "high") and f["path"].startswith("src/m1")}
    first = service.list(READER, listing(limit=10, severity="critical,high", path="src/m1"))
    second = service.list(READER, listing(limit=10, severity="critical,high", path="src/m1",
                                          cursor=first["next_cursor"]))
    assert {f["id"] for f in first["items"] + second["items"]} == wanted and second["next_cursor"] is None
    with pytest.raises(Invalid) as refused:
        service.list(READER, listing(cursor="f1.bm90IGEgY3Vyc29y"))
    assert refused.value.code == "invalid_cursor" and "cursor" in (refused.value.fields or {})


def test_filters_by_tool_rule_text_and_new_since(service, store):
    two_scans(store)
    record(store, OTHER, [finding(2, Severity.LOW), finding(5, Severity.LOW, tool="semgrep")], hours=2,
           baseline=HEAD)

    def fingerprints(**query: Any) -> list[str]:
        return [f["fingerprint"] for f in service.list(READER, listing(**query))["items"]]

    assert fingerprints(tool="semgrep") == ["fp00005"]
    assert fingerprints(rule="B4", tool="bandit") == ["fp00004"]
    assert fingerprints(q="NUMBER 3") == ["fp00003"]
    assert fingerprints(new_since=HEAD) == ["fp00005"]
    with pytest.raises(NotFound) as refused:
        service.list(READER, listing(new_since="test_ffffffffffff"))
    assert refused.value.code == "scan_not_found"


def test_an_unreachable_database_is_503_with_retry_after():
    unreachable = FindingsStore(make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none"))
    service = FindingsService(unreachable)
    try:
        for call in (lambda: service.list(READER, listing()), lambda: service.get(READER, 1),
                     lambda: service.diff(READER, HEAD, BASE)):
            with pytest.raises(Unavailable) as refused:
                call()
            assert refused.value.code == "database_unavailable" and refused.value.retry_after == 5
            assert STATUS[refused.value.kind] == 503
    finally:
        unreachable.close()


def test_every_refusal_of_the_store_has_a_kind():
    raised = set()
    for path in (ROOT / "tasks/findings_store.py", ROOT / "tasks/findings.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "FindingsError" and node.args:
                code = node.args[0]
                assert isinstance(code, ast.Attribute), ast.unparse(node)
                raised.add(code.attr.lower())
    assert len(raised) >= 5
    assert raised <= {code.value for code in KIND}


# -- the real app, through its edge ---------------------------------------------------------------

@pytest.fixture()
def api(edge, database_url: str) -> Iterator[tuple[Flask, KeyStore, FindingsStore, Clock]]:
    build, keys, _ = edge
    upgrade(database_url)
    app = build(database_url=database_url)
    store: FindingsStore = app.extensions["certus"].findings.store
    clock = Clock(NOW)
    store.clock = clock  # the app's own store, on a clock the test moves
    try:
        yield app, keys, store, clock
    finally:
        store.close()


def _query(**query: Any) -> str:
    return "&".join(f"{k}={v}" for k, v in {**ACME, **query}.items())


def test_findings_over_http(api):
    app, keys, store, clock = api
    ids = two_scans(store)
    c = app.test_client()
    reader, _ = keys.create("reader", ["acme"])
    outsider, _ = keys.create("admin", ["beta"])
    page = c.get(f"/v1/findings?{_query(limit=2)}", headers=auth(reader))
    assert page.status_code == 200, page.json
    assert [f["severity"] for f in page.json["items"]] == ["critical", "high"] and page.json["next_cursor"]
    rest = c.get(f"/v1/findings?{_query(limit=2, cursor=page.json['next_cursor'])}", headers=auth(reader)).json
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    assert {f["id"] for f in page.json["items"] + rest["items"]} == set(ids.values())
    one = c.get(f"/v1/findings/{ids[3]}", headers=auth(reader)).json
    assert one["sources"] == [{"tool": "bandit", "rule_id": "B3"}] and one["first_seen_test_id"] == BASE
    assert (one["state"], one["effective_state"], one["expired"], one["expires_at"]) == ("open", "open", False, None)

    for path in ("/v1/findings?" + _query(), f"/v1/findings/{ids[3]}", f"/v1/findings/{ids[3]}/history",
                 f"/v1/security-scans/{HEAD}/diff?against={BASE}"):
        refused = c.get(path, headers=auth(outsider))
        assert refused.status_code == 404, path
        assert refused.json["error"]["code"] in ("workspace_not_found", "finding_not_found", "scan_not_found")
    assert c.get("/v1/findings?" + _query(), headers={}).status_code == 401
    for query, code in ((_query(state="closed"), "validation_error"), ("workspace_id=acme", "validation_error"),
                        (_query(colour="red"), "validation_error"), (_query(cursor="nope"), "invalid_cursor"),
                        (_query(limit=501), "validation_error"), (_query(q="%00"), "validation_error"),
                        (_query(tool="a%E2%80%AEb"), "validation_error")):
        refused = c.get(f"/v1/findings?{query}", headers=auth(reader))
        assert (refused.status_code, refused.json["error"]["code"]) == (422, code), query
    assert c.get(f"/v1/findings/{2**64}", headers=auth(reader)).json["error"]["code"] == "finding_not_found"
    assert c.get("/v1/findings/abc", headers=auth(reader)).status_code == 404

    diff = c.get(f"/v1/security-scans/{HEAD}/diff?against={BASE}", headers=auth(reader))
    assert diff.status_code == 200 and diff.json["totals"] == {"new": 1, "unchanged": 1, "updated": 1, "fixed": 1}
    assert c.get(f"/v1/security-scans/{HEAD}/diff?include_unchanged=true", headers=auth(reader)).json[
        "unchanged"][0]["finding_id"] == ids[2]
    bad = c.get(f"/v1/security-scans/{HEAD}/diff?against=HEAD", headers=auth(reader))
    assert (bad.status_code, bad.json["error"]["code"]) == (422, "validation_error")


def test_triage_over_http_needs_the_triage_permission_and_expires(api):
    app, keys, store, clock = api
    ids = two_scans(store)
    c = app.test_client()
    keyed = {role: keys.create(role, ["acme"], name=f"{role}-key") for role in
             ("reader", "submitter", "publisher", "triager", "admin")}
    path = f"/v1/findings/{ids[4]}"
    body = {"state": "accepted_risk", "reason": "behind the VPN until the rewrite", "owner": "alice",
            "expires_at": "2026-03-31T00:00:00+02:00"}
    for role in ("reader", "submitter", "publisher"):
        refused = c.patch(path, json=body, headers=auth(keyed[role][0]))
        assert (refused.status_code, refused.json["error"]["code"]) == (403, "forbidden"), role
    done = c.patch(path, json=body, headers=auth(keyed["triager"][0]))
    assert done.status_code == 200, done.json
    assert (done.json["state"], done.json["expires_at"]) == ("accepted_risk", "2026-03-30T22:00:00Z")
    assert done.json["triaged_by"] == f"triager-key (key {keyed['triager'][1].key_id})"
    for bad, code in (({**body, "expires_at": "2027-01-31T00:00:00"}, "validation_error"),  # no time zone
                      ({**body, "owner": "al\u202eice"}, "validation_error"),
                      ({**body, "reason": "a\x00b"}, "validation_error"),
                      ({**body, "colour": "red"}, "validation_error"),
                      ({**body, "state": "fixed"}, "validation_error"),
                      ({**body, "expires_at": "9999-12-31T23:30:00-05:00"}, "validation_error"),
                      ({"state": "accepted_risk", "reason": "x", "owner": "bob"}, "triage_invalid"),
                      ({**body, "expires_at": "2026-03-01T00:00:00Z"}, "triage_invalid")):
        refused = c.patch(path, json=bad, headers=auth(keyed["admin"][0]))
        assert (refused.status_code, refused.json["error"]["code"]) == (422, code), bad
    assert c.patch(path, data="state=open", headers=auth(keyed["admin"][0])).status_code == 415
    assert c.patch(f"/v1/findings/{2**64}", json=body, headers=auth(keyed["admin"][0])).status_code == 404

    clock.now = datetime(2026, 3, 30, 22, 0, tzinfo=UTC)
    lapsed = c.get(path, headers=auth(keyed["reader"][0])).json
    assert (lapsed["state"], lapsed["effective_state"], lapsed["expired"]) == ("accepted_risk", "open", True)
    history = c.get(f"{path}/history", headers=auth(keyed["reader"][0])).json
    assert history["finding_id"] == ids[4]
    assert [(e["actor"], e["to_state"], e["owner"], e["expires_at"]) for e in history["items"]] == [
        (f"triager-key (key {keyed['triager'][1].key_id})", "accepted_risk", "alice", "2026-03-30T22:00:00Z")]


def test_a_triager_may_read_and_triage_and_nothing_else(api):
    app, keys, store, _ = api
    ids = two_scans(store)
    c = app.test_client()
    triager, _ = keys.create("triager", ["acme"])
    assert c.get("/v1/security-scans", headers=auth(triager)).status_code == 200
    body = {"workspace_id": "acme", "component_id": "billing", "assessment_id": "a1",
            "git_url": "https://127.0.0.1/org/repo.git"}
    for method, path, json in (("post", "/v1/security-scans", body), ("get", "/v1/keys", None),
                               ("post", "/v1/keys", {"role": "triager", "workspaces": ["acme"]})):
        refused = getattr(c, method)(path, json=json, headers=auth(triager))
        assert (refused.status_code, refused.json["error"]["code"]) == (403, "forbidden"), path
    assert c.patch(f"/v1/findings/{ids[1]}", json={"state": "false_positive", "reason": "a test helper"},
                   headers=auth(triager)).status_code == 200


def test_an_unreachable_database_answers_503_at_the_edge(edge):
    build, keys, _ = edge
    app = build(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    reader, _ = keys.create("reader", ["acme"])
    answer = app.test_client().get("/v1/findings?" + _query(), headers=auth(reader))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json["error"]["code"] == "database_unavailable"
    assert re.search(r"retry", answer.json["error"]["message"])


def test_key_creation_offers_the_triager_role(edge):
    build, keys, _ = edge
    c = build().test_client()
    admin, _ = keys.create("admin", ["acme"])
    created = c.post("/v1/keys", json={"role": "triager", "workspaces": ["acme"], "name": "security review"},
                     headers=auth(admin))
    assert created.status_code == 201 and created.json["role"] == "triager"
    made = keys.authenticate(created.json["key"])
    assert made is not None and made.can("triage") and not made.can("submit") and not made.can("publish")
