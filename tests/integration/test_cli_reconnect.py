"""A live log that drops mid-stream: the CLI reconnects from the last event it received and shows
every event exactly once, in order."""

from __future__ import annotations

from tests.support.cli import run_cli
from tests.support.cutproxy import CuttingProxy


def test_follow_resumes_after_a_dropped_connection(service, vulnerable_repo):
    created = service.submit(git_url=vulnerable_repo["url"], profile="smoke", assessment_id="reconnect")
    test_id = created.json()["test_id"]
    proxy = CuttingProxy(service.api_ports[0], cut_after=1200)
    try:
        auth = service.http.headers.get("Authorization", "")
        key = auth.split(" ", 1)[1] if auth.startswith("Bearer ") else None
        result = run_cli("logs", test_id, "--follow", "--json", "--transport", "ws", url=proxy.url, api_key=key)
    finally:
        proxy.close()
    assert result.code == 0, result.err
    assert proxy.cuts == 1 and proxy.stream_connections >= 2  # it was cut, and it came back
    shown = [e["id"] for e in result.json_lines()[:-1]]
    stored = service.http.get(service.url(f"/v1/security-scans/{test_id}/events?limit=5000"), timeout=10).json()
    assert shown == [e["id"] for e in stored["events"]]
