"""Hostile requests against a real API: each gets a 4xx with a stable code and leaves no trace.

Every row of the attack table in docs/security.md is one entry of ``ATTACKS`` below
(``python -m tests.integration.test_hostile_inputs`` prints the table).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.service import Service, base_env

BASE = {"workspace_id": "ws-a", "component_id": "comp", "assessment_id": "a-1"}


def scan(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


def git(url: str, **fields: Any) -> dict[str, Any]:
    return scan(git_url=url, **fields)


# (attack, request, expected status, expected code). A request is a JSON body for
# POST /v1/security-scans, or a dict with "method"/"path"/"data"/"headers"/"key".
ATTACKS: list[tuple[str, Any, int, str]] = [
    ("git transport helper `ext::` runs a command", git("ext::sh -c touch% /tmp/pwned"), 422, "validation_error"),
    ("other transport helper (`fd::`)", git("fd::17/repo"), 422, "validation_error"),
    ("option injection through the URL (`--upload-pack=`)", git("--upload-pack=touch /tmp/x"), 422,
     "validation_error"),
    ("option injection through an ssh host", git("ssh://-oProxyCommand=touch%20x/repo"), 422, "validation_error"),
    ("option injection through an ssh user", git("ssh://-oProxyCommand=x@example.com/repo"), 422,
     "validation_error"),
    ("scheme outside the allow-list (ftp)", git("ftp://example.com/repo"), 422, "validation_error"),
    ("scheme outside the allow-list (javascript)", git("javascript:alert(1)"), 422, "validation_error"),
    ("scp-style address", git("git@example.com:org/repo.git"), 422, "validation_error"),
    ("credentials in the URL", git("https://user:secret@example.com/repo"), 422, "validation_error"),
    ("host smuggled as user info (`trusted@10.0.0.1`)", git("https://github.com@10.0.0.1/repo"), 422,
     "validation_error"),
    ("backslash host confusion", git("https://example.com\\@127.0.0.1/repo"), 422, "validation_error"),
    ("percent-encoded host", git("https://127.0.0.%31/repo"), 422, "validation_error"),
    ("non-ASCII host", git("https://ex\u0430mple.com/repo"), 422, "validation_error"),
    ("unbalanced IPv6 bracket (crashed the URL parser)", git("https://[::1/repo"), 422, "validation_error"),
    ("port out of range", git("https://example.com:99999/repo"), 422, "validation_error"),
    ("query string carrying git options", git("https://example.com/repo?upload-pack=x"), 422, "validation_error"),
    ("newline in the URL", git("https://example.com/repo\nHost: x"), 422, "validation_error"),
    ("loopback address", git("http://127.0.0.1/repo"), 422, "git_host_not_allowed"),
    ("loopback by name", git("http://localhost/repo"), 422, "git_host_not_allowed"),
    ("loopback as a decimal integer", git("http://2130706433/repo"), 422, "git_host_not_allowed"),
    ("loopback in hex shorthand", git("http://0x7f.1/repo"), 422, "git_host_not_allowed"),
    ("IPv6 loopback", git("http://[::1]/repo"), 422, "git_host_not_allowed"),
    ("IPv4-mapped IPv6 loopback", git("http://[::ffff:127.0.0.1]/repo"), 422, "git_host_not_allowed"),
    ("unspecified address", git("http://0.0.0.0/repo"), 422, "git_host_not_allowed"),
    ("cloud metadata (link-local)", git("http://169.254.169.254/latest/meta-data"), 422, "git_host_not_allowed"),
    ("private network", git("https://10.1.2.3/repo"), 422, "git_host_not_allowed"),
    ("private network (192.168/16)", git("git://192.168.0.1/repo"), 422, "git_host_not_allowed"),
    ("unresolvable host", git("https://no-such-host.invalid/repo"), 422, "git_host_unresolvable"),
    ("local repository while local sources are off", git("file:///etc"), 422, "git_url_not_allowed"),
    ("local path while local sources are off", git("/srv/repo"), 422, "git_url_not_allowed"),
    ("file URL naming another host", git("file://evil.example/etc"), 422, "validation_error"),
    ("branch beginning with '-'", git("https://example.com/r", branch="--upload-pack=x"), 422, "validation_error"),
    ("branch with '..'", git("https://example.com/r", branch="main/../../x"), 422, "validation_error"),
    ("branch with a reflog expression", git("https://example.com/r", branch="@{-1}"), 422, "validation_error"),
    ("branch with a control character", git("https://example.com/r", branch="main\n"), 422, "validation_error"),
    ("commit that is a revision expression", git("https://example.com/r", commit="HEAD~1"), 422,
     "validation_error"),
    ("commit that is an option", git("https://example.com/r", commit="--all"), 422, "validation_error"),
    ("manifest_path leaving the source", git("https://example.com/r", manifest_path="../../etc/passwd"), 422,
     "validation_error"),
    ("absolute manifest_path", git("https://example.com/r", manifest_path="/etc/passwd"), 422,
     "validation_error"),
    ("manifest_path with a NUL byte", git("https://example.com/r", manifest_path="a\u0000b"), 422,
     "validation_error"),
    ("manifest_uri on an internal host", git("https://example.com/r", manifest_uri="https://127.0.0.1/m.json"), 422,
     "git_host_not_allowed"),
    ("manifest_uri reading a local file", git("https://example.com/r", manifest_uri="file:///etc/passwd"), 422,
     "manifest_uri_not_allowed"),
    ("manifest_uri with credentials", git("https://example.com/r", manifest_uri="https://u:p@example.com/m"), 422,
     "validation_error"),
    ("directory outside the allowed roots", scan(source_type="directory", directory_path="/etc"), 422,
     "path_not_allowed"),
    ("directory escaping an allowed root with '..'",
     scan(source_type="directory", directory_path="{allowed}/../../etc"), 422, "path_not_allowed"),
    ("relative directory path", scan(source_type="directory", directory_path="etc"), 422, "path_not_allowed"),
    ("directory path with a NUL byte", scan(source_type="directory", directory_path="{allowed}/a\u0000b"), 422,
     "path_not_allowed"),
    ("archive outside the allowed roots", scan(source_type="archive", archive_path="/etc/passwd"), 422,
     "path_not_allowed"),
    ("workspace id with path characters", git("https://example.com/r", workspace_id="../../x"), 422,
     "validation_error"),
    ("profile naming a path", git("https://example.com/r", profile="../../etc/passwd"), 422, "validation_error"),
    ("unknown field", git("https://example.com/r", callback_url="http://x"), 422, "validation_error"),
    ("oversized requested_by", git("https://example.com/r", requested_by="x" * 10000), 422, "validation_error"),
    ("JSON nested 10,000 deep", {"method": "post", "path": "/v1/security-scans",
                                 "data": "[" * 10000 + "]" * 10000}, 413, "json_too_deep"),
    ("body over the size limit", {"method": "post", "path": "/v1/security-scans", "data": " " * (2 << 20)}, 413,
     "payload_too_large"),
    ("body that is not JSON", {"method": "post", "path": "/v1/security-scans", "data": "x=1",
                               "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
     "unsupported_media_type"),
    ("JSON that is not an object", {"method": "post", "path": "/v1/security-scans", "data": "[1]"}, 400,
     "invalid_json"),
    ("no API key", {"method": "post", "path": "/v1/security-scans", "json": git("https://example.com/r"),
                    "key": None}, 401, "unauthorized"),
    ("forged API key", {"method": "post", "path": "/v1/security-scans", "json": git("https://example.com/r"),
                        "key": "ca_0123456789ab_" + "A" * 43}, 401, "unauthorized"),
    ("reader key submitting", {"method": "post", "path": "/v1/security-scans", "json": git("https://example.com/r"),
                               "key": "reader"}, 403, "forbidden"),
    ("submitting into another workspace", {"method": "post", "path": "/v1/security-scans",
                                           "json": git("https://example.com/r", workspace_id="ws-b"),
                                           "key": "reader-b-less"}, 404, "workspace_not_found"),
    ("scan id with path traversal", {"method": "get", "path": "/v1/security-scans/..%2f..%2fetc%2fpasswd"}, 404,
     "not_found"),
    ("scan id that is not an id", {"method": "get", "path": "/v1/security-scans/test_..%5c..%5cx"}, 404,
     "scan_not_found"),
    ("cursor that was not issued", {"method": "get", "path": "/v1/security-scans?cursor=Zm9vfGJhcg"}, 422,
     "invalid_cursor"),
    ("event id that is an expression", {"method": "get", "path": "/v1/security-scans/test_0123456789ab/events"
                                        "?after=%2B"}, 404, "scan_not_found"),
]


def snapshot(client: redis.Redis, roots: list[Path]) -> tuple[set[str], set[str]]:
    keys = set(client.scan_iter("*"))
    files = {str(p) for root in roots if root.exists() for p in root.rglob("*")}
    return keys, files


@pytest.fixture(scope="module")
def bare_api(tmp_path_factory, redis_url):
    """An API with its own Redis database and no workers: nothing can be picked up behind our back."""
    tmp = tmp_path_factory.mktemp("hostile")
    db_url = redis_url.rsplit("/", 1)[0] + "/6"
    client = redis.Redis.from_url(db_url, decode_responses=True)
    client.flushdb()
    allowed = tmp / "allowed"
    allowed.mkdir()
    svc = Service(env=base_env(tmp, db_url, CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS="",
                               CERTUS_ASSURANCE_ALLOWED_SOURCE_ROOTS=str(allowed),
                               CERTUS_ASSURANCE_RATE_LIMIT_BURST="1000"), workdir=tmp)
    svc.keys = {"reader": svc.create_key("reader", ["ws-a"]),  # type: ignore[attr-defined]
                "reader-b-less": svc.create_key("submitter", ["ws-a"])}
    try:
        svc.start_api()
        yield svc, client, allowed
    finally:
        svc.stop()
        client.flushdb()


def _send(svc: Service, request: Any, allowed: Path):
    if "method" not in request:
        request = {"method": "post", "path": "/v1/security-scans", "json": request}
    body = request.get("json")
    if body:
        body = {k: v.replace("{allowed}", str(allowed)) if isinstance(v, str) else v for k, v in body.items()}
    headers = {"Content-Type": "application/json", **request.get("headers", {})}
    session = svc.http
    if "key" in request:
        session = svc.client(svc.keys.get(request["key"], request["key"])) if request["key"] else \
            type(svc.http)()
    kwargs: dict[str, Any] = {"headers": headers, "timeout": 60}
    if body is not None:
        kwargs["json"] = body
    elif "data" in request:
        kwargs["data"] = request["data"]
    return session.request(request["method"].upper(), svc.url(request["path"]), **kwargs)


def test_hostile_requests_are_refused_and_leave_no_trace(bare_api):
    svc, client, allowed = bare_api
    roots = [svc.artifact_root, Path(svc.env["CERTUS_ASSURANCE_WORK_ROOT"]), allowed]
    for session in [svc.http, *(svc.client(k) for k in svc.keys.values())]:  # type: ignore[attr-defined]
        assert session.get(svc.url("/v1/security-scans"), timeout=60).status_code == 200
    before = snapshot(client, roots)
    failures = []
    for attack, request, status, code in ATTACKS:
        resp = _send(svc, request, allowed)
        got = (resp.status_code, resp.json().get("error", {}).get("code") if resp.content else None)
        if got != (status, code):
            failures.append(f"{attack}: expected {status} {code}, got {got} {resp.text[:200]}")
        assert "Traceback" not in resp.text
    assert failures == []
    after = snapshot(client, roots)
    assert after[0] == before[0], "Redis keys changed"
    assert after[1] == before[1], "files changed"
    assert client.llen("scans") == 0
    assert not list(client.scan_iter("ca:scan:*"))
    assert not os.path.exists("/tmp/pwned")


def test_a_valid_request_does_leave_a_trace(bare_api):
    """The snapshot above would see a write: a valid submission to the same API changes it."""
    svc, client, allowed = bare_api
    (allowed / "src").mkdir(exist_ok=True)
    before = snapshot(client, [svc.artifact_root])
    resp = svc.submit(source_type="directory", directory_path=str(allowed / "src"), workspace_id="ws-a")
    assert resp.status_code == 202, resp.text
    assert snapshot(client, [svc.artifact_root])[0] - before[0]
    assert client.llen("scans") == 1


def markdown() -> str:
    rows = ["| attack | answer |", "|---|---|"]
    for attack, _request, status, code in ATTACKS:
        rows.append(f"| {attack} | {status} `{code}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
