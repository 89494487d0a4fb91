"""Structured logs from real processes: with LOG_FORMAT=json the API and the worker write one JSON
object per line, carrying the request id (API) and the scan's test_id and Celery task id (worker)."""

from __future__ import annotations

import json

import pytest

from stack import processes
from stack.redis_server import RedisServer
from tests.support.service import Service, base_env
from tests.support.ws import read_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _json_lines(path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # every structured line must parse
    return out


def test_api_and_worker_log_json_with_ids(tmp_path, vulnerable_repo):
    server = RedisServer(tmp_path / "redis").start()
    svc = Service(env=base_env(tmp_path, server.url, CERTUS_ASSURANCE_LOG_FORMAT="json",
                               CERTUS_ASSURANCE_REPLICA_ID="api-json"), workdir=tmp_path)
    try:
        # Quiet, as compose runs it: no start-up banner, so every line must be JSON.
        worker = processes.spawn(processes.worker_argv("jsonlog", "scans", 1, quiet=True), svc.env,
                                 tmp_path / "worker-jsonlog.log")
        svc.procs.append(worker)
        port = svc.start_api()
        svc.wait_workers(1, timeout=120)
        resp = svc.http.post(svc.url("/v1/security-scans"), headers={"X-Request-ID": "req-abc123"}, timeout=30,
                             json={"workspace_id": "ws", "component_id": "c", "assessment_id": "a",
                                   "git_url": vulnerable_repo["url"], "profile": "smoke"})
        assert resp.status_code == 202 and resp.headers["X-Request-ID"] == "req-abc123"
        assert resp.headers["X-Certus-Replica"] == "api-json"
        test_id = resp.json()["test_id"]
        read_stream(svc.ws_url(f"/v1/security-scans/{test_id}/stream"), timeout=300, headers=svc.ws_headers)
        assert svc.wait_done(test_id)["status"] == "SUCCEEDED"
    finally:
        svc.stop()
        server.stop()
    api_text = (tmp_path / f"api-{port}.log").read_text()
    # Every line the API process group wrote is a JSON object: gunicorn's own lines included.
    assert [line for line in api_text.splitlines() if line.strip() and not line.startswith("{")] == []
    api = _json_lines(tmp_path / f"api-{port}.log")
    assert any(e["logger"] == "gunicorn.error" for e in api)
    request_line = next(e for e in api if e.get("request_id") == "req-abc123")
    assert request_line["method"] == "POST" and request_line["status"] == 202
    assert request_line["path"] == "/v1/security-scans" and request_line["level"] == "info"
    worker = _json_lines(tmp_path / "worker-jsonlog.log")
    tagged = [e for e in worker if e.get("test_id") == test_id]
    assert tagged, "no worker line names the scan"
    # Lines logged while the task ran carry the Celery task id (which is the scan's id).
    assert any(e.get("task_id") == test_id for e in tagged)
    assert any("finished SUCCEEDED" in e["message"] for e in tagged)
    # Nothing the worker wrote is unstructured (warnings included), except Celery's own shutdown
    # notice, which it prints to stderr without logging ("worker: Warm shutdown (MainProcess)").
    plain = [line for line in (tmp_path / "worker-jsonlog.log").read_text().splitlines()
             if line.strip() and not line.startswith("{")]
    assert [line for line in plain if not line.startswith("worker: ")] == []
