"""A canary secret sent through every input that could carry one never comes back: not in
answers, events, logs, Redis or the artifact folder."""

from __future__ import annotations

import secrets

import redis
import requests

from tests.support.ws import read_stream


def test_canary_secret_reaches_no_answer_log_or_store(service, vulnerable_repo, redis_url):
    canary = "CANARY" + secrets.token_hex(8)
    answers = []
    forged = requests.Session()
    forged.headers["Authorization"] = f"Bearer ca_0123456789ab_{canary}{'x' * 20}"
    answers.append(forged.get(service.url("/v1/security-scans"), timeout=60))
    answers.append(forged.post(service.url("/v1/stream-tokens"), timeout=60))
    for url in (f"https://user:{canary}@example.com/r.git", f"https://{canary}@example.com/r.git",
                f"ssh://git:{canary}@example.com/r.git", f"https://example.com/r.git?access_token={canary}",
                f"https://example.com/r.git#{canary}"):
        answers.append(service.submit(git_url=url, profile="smoke"))
    answers.append(service.submit(git_url=vulnerable_repo["url"], manifest_uri=f"https://u:{canary}@example.com/m"))
    answers.append(service.http.get(service.url("/v1/security-scans"), params={"cursor": canary}, timeout=60))
    for resp in answers:
        assert 400 <= resp.status_code < 500, resp.text
        assert canary not in resp.text and canary not in str(resp.headers)

    # A stream token travels in the URL; it must not land in the access log.
    test_id = service.submit(git_url=vulnerable_repo["url"], profile="smoke").json()["test_id"]
    token = service.http.post(service.url("/v1/stream-tokens"), timeout=60).json()["token"]
    stream = read_stream(service.ws_url(f"/v1/security-scans/{test_id}/stream?token={token}"))
    assert stream.close_code == 1000 and stream.types[-1] == "scan_complete"
    assert canary not in str(stream.events)

    logs = "".join(p.read_text(errors="replace") for p in service.workdir.glob("*.log"))
    assert logs, "no logs were written"
    assert canary not in logs
    assert token not in logs
    assert service.api_key not in logs
    stored = redis_text(redis.Redis.from_url(service.env["CERTUS_ASSURANCE_REDIS_URL"], decode_responses=True))
    assert len(stored) > 1000
    assert canary not in stored and service.api_key not in stored and token not in stored
    for path in service.artifact_root.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def redis_text(client: redis.Redis) -> str:
    """Every key and value in the database as text (DUMP would hide compressed values)."""
    parts = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        value = {"string": lambda k: client.get(k), "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
                 "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1),
                 "stream": lambda k: client.xrange(k)}.get(kind, lambda k: "")(key)
        parts.append(f"{key} {value}")
    return "\n".join(parts)
