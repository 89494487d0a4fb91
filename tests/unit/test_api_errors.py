"""The API's error envelope when Redis is down: 503 with the envelope, never a stack trace."""

from app import create_app
from stack.ports import free_port
from tasks.settings import Settings


def test_redis_down_gives_503_envelope():
    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    client = app.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json["error"]["code"] == "redis_unavailable"
    key = {"Authorization": "Bearer ca_0123456789ab_" + "k" * 43}  # well-formed: checking it needs Redis
    got = client.get("/v1/security-scans/test_0123456789ab", headers=key)
    assert got.status_code == 503 and got.json["error"]["code"] == "redis_unavailable"
    assert "Traceback" not in got.get_data(as_text=True)
    assert client.get("/health").status_code == 200
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert missing.json["error"]["request_id"] == missing.headers["X-Request-ID"]
    wrong = client.put("/health")
    assert wrong.status_code == 405 and wrong.json["error"]["code"] == "method_not_allowed"
    # No key: refused before Redis is asked or the body read (413 is tested with a key elsewhere).
    big = client.post("/v1/security-scans", data=b"x" * (2 * 1024 * 1024), content_type="application/json")
    assert big.status_code == 401 and big.json["error"]["code"] == "unauthorized"
