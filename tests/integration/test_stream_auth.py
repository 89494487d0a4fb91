"""WebSocket streams on a real API: keys, stream tokens, other workspaces, per-key caps, pings."""

from __future__ import annotations

import time

import pytest
import redis
import websocket

from tests.support.service import Service, base_env
from tests.support.ws import read_stream


@pytest.fixture(scope="module")
def api(tmp_path_factory, redis_url):
    """One API and no worker: scans stay QUEUED, so their streams stay open."""
    tmp = tmp_path_factory.mktemp("streams")
    db_url = redis_url.rsplit("/", 1)[0] + "/11"
    client = redis.Redis.from_url(db_url, decode_responses=True)
    client.flushdb()
    svc = Service(env=base_env(tmp, db_url, CERTUS_ASSURANCE_MAX_WS_PER_KEY="2",
                               CERTUS_ASSURANCE_WS_PING_INTERVAL="2"), workdir=tmp)
    try:
        svc.start_api()
        yield svc
    finally:
        svc.stop()
        client.flushdb()


def queued_scan(svc: Service, workspace: str = "ws-a") -> str:
    resp = svc.submit(git_url="git://127.0.0.1:9/none", workspace_id=workspace)
    assert resp.status_code == 202, resp.text
    return resp.json()["test_id"]


def test_stream_needs_a_key_or_token(api):
    test_id = queued_scan(api)
    url = api.ws_url(f"/v1/security-scans/{test_id}/stream")
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(url, timeout=30)
    assert exc.value.status_code == 401
    token = api.http.post(api.url("/v1/stream-tokens"), timeout=30).json()["token"]
    ws = websocket.create_connection(f"{url}?token={token}", timeout=30)
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:  # single use
        websocket.create_connection(f"{url}?token={token}", timeout=30)
    assert exc.value.status_code == 401


def test_other_workspace_stream_is_not_found(api):
    test_id = queued_scan(api, "ws-a")
    key_b = api.create_key("reader", ["ws-b"])
    url = api.ws_url(f"/v1/security-scans/{test_id}/stream")
    result = read_stream(url, headers=[f"Authorization: Bearer {key_b}"], timeout=30)
    assert result.close_code == 4404 and result.events == []
    token = api.client(key_b).post(api.url("/v1/stream-tokens"), timeout=30).json()["token"]
    result = read_stream(f"{url}?token={token}", timeout=30)
    assert result.close_code == 4404 and result.events == []


def test_open_streams_per_key_are_capped(api):
    key = api.create_key("reader", ["ws-a"])
    headers = [f"Authorization: Bearer {key}"]
    url = api.ws_url(f"/v1/security-scans/{queued_scan(api)}/stream")
    first = websocket.create_connection(url, timeout=30, header=headers)
    second = websocket.create_connection(url, timeout=30, header=headers)
    for ws in (first, second):
        assert ws.recv()  # the replayed "queued" event: both are streaming
    third = read_stream(url, headers=headers, timeout=30)
    assert third.close_code == 4429
    other = websocket.create_connection(url, timeout=30, header=api.ws_headers)  # other keys are unaffected
    assert other.recv_data_frame(True)[0] == websocket.ABNF.OPCODE_TEXT
    other.close()
    first.close()
    second.close()

    def slot_free():
        ws = websocket.create_connection(url, timeout=30, header=headers)
        try:
            opcode, frame = ws.recv_data_frame(True)
            return opcode == websocket.ABNF.OPCODE_TEXT
        finally:
            ws.close()

    deadline = time.monotonic() + 60
    while not slot_free():
        assert time.monotonic() < deadline, "slots were not released"
        time.sleep(1)


def test_a_client_that_does_not_answer_pings_is_closed(api):
    url = api.ws_url(f"/v1/security-scans/{queued_scan(api)}/stream")
    ws = websocket.create_connection(url, timeout=60, header=api.ws_headers)
    time.sleep(7)  # several ping intervals without reading, so without answering
    # Read the raw bytes the server sent (the client library would answer the pings it finds).
    raw = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = ws.sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        raw += chunk
    ws.sock.close()
    # a server close frame (0x88, short length) carrying code 1008 (policy violation)
    codes = [int.from_bytes(raw[i + 2:i + 4], "big") for i in range(len(raw) - 3)
             if raw[i] == 0x88 and raw[i + 1] < 126]
    assert 1008 in codes, raw[-80:]
