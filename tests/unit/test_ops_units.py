"""Redis URL handling (TLS, Sentinel), queue routing, JSON log lines and metric exposition."""

from __future__ import annotations

import io
import json
import logging
import ssl

import pytest
from celery.signals import task_postrun, task_prerun

from tasks import metrics, names
from tasks.celery_app import create_celery
from tasks.logconfig import ContextFilter, JsonFormatter, bind_celery_task_context, test_id_var
from tasks.redis_client import connect, parse_sentinel_url, tls_options
from tasks.settings import Settings, SettingsError


def test_sentinel_urls_parse_in_kombus_form():
    parsed = parse_sentinel_url("sentinel://:s3cret@10.0.0.1:26379/2;sentinel://:s3cret@10.0.0.2/2")
    assert parsed.hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert parsed.password == "s3cret" and parsed.db == 2
    with pytest.raises(ValueError):
        parse_sentinel_url("redis://10.0.0.1:6379/0")
    with pytest.raises(SettingsError):
        Settings.from_env({"CERTUS_ASSURANCE_REDIS_URL": "sentinel://h:26379/0"})


def test_sentinel_client_asks_for_the_named_master():
    settings = Settings(redis_url="sentinel://:pw@127.0.0.1:1/3", redis_sentinel_master="certus",
                        redis_sentinel_password="spw")
    client = connect(settings.redis_url, settings=settings)
    pool = client.connection_pool
    assert pool.service_name == "certus"
    assert pool.connection_kwargs["password"] == "pw" and pool.connection_kwargs["db"] == 3
    sentinel = pool.sentinel_manager.sentinels[0]
    assert sentinel.connection_pool.connection_kwargs["password"] == "spw"


def test_tls_urls_carry_the_ca_and_client_certificate():
    settings = Settings(redis_url="rediss://:pw@redis.internal:6380/0", redis_tls_ca_file="/etc/ca.pem",
                        redis_tls_cert_file="/etc/client.pem", redis_tls_key_file="/etc/client.key")
    opts = tls_options(settings)
    assert opts["ssl_ca_certs"] == "/etc/ca.pem" and opts["ssl_cert_reqs"] == "required"
    assert opts["ssl_certfile"] == "/etc/client.pem" and opts["ssl_keyfile"] == "/etc/client.key"
    client = connect(settings.redis_url, settings=settings)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem" and kwargs["ssl_check_hostname"] is True
    app = create_celery(settings)
    assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert app.conf.broker_use_ssl["ssl_ca_certs"] == "/etc/ca.pem"
    plain = create_celery(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert not plain.conf.broker_use_ssl


def test_celery_broker_follows_sentinel():
    settings = Settings(redis_url="sentinel://:pw@127.0.0.1:26379/0", redis_sentinel_master="certus",
                        redis_sentinel_password="spw")
    options = create_celery(settings).conf.broker_transport_options
    assert options["master_name"] == "certus"
    assert options["sentinel_kwargs"] == {"password": "spw"}
    assert options["visibility_timeout"] == settings.visibility_timeout


def test_queue_routing_per_profile():
    assert names.scan_queue("smoke", per_profile=False) == "scans"
    assert names.scan_queue("Thorough", per_profile=True) == "scans.thorough"
    # A profile that only a manifest defines goes to the shared queue: no worker may listen for it.
    assert names.scan_queue("my-team-profile", per_profile=True) == "scans"
    assert "scans.smoke" in names.all_queues(True) and names.all_queues(False) == ["scans", "uploads"]


def _json_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.ops.json")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_context_and_extra_fields():
    logger, stream = _json_logger()
    token = test_id_var.set("test_0123456789ab")
    try:
        logger.info("GET %s", "/x", extra={"status": 200, "duration_ms": 1.5, "obj": object()})
    finally:
        test_id_var.reset(token)
    logger.info("no context")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "GET /x" and first["test_id"] == "test_0123456789ab"
    assert first["status"] == 200 and first["duration_ms"] == 1.5 and first["obj"].startswith("<object")
    assert first["level"] == "info" and first["ts"].endswith("Z")
    assert "test_id" not in second


def test_celery_signals_bind_the_task_and_scan_ids():
    bind_celery_task_context()
    logger, stream = _json_logger()

    class FakeTask:
        name = "scans.run"

    task_prerun.send(sender=FakeTask, task_id="test_aaaaaaaaaaaa", task=FakeTask(), args=["test_aaaaaaaaaaaa"],
                     kwargs={})
    logger.info("inside")
    task_postrun.send(sender=FakeTask, task_id="test_aaaaaaaaaaaa", task=FakeTask(), args=[], kwargs={})
    logger.info("after")
    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["task_id"] == "test_aaaaaaaaaaaa" and inside["test_id"] == "test_aaaaaaaaaaaa"
    assert "task_id" not in after and "test_id" not in after


def test_metrics_render_in_prometheus_text_format():
    metrics.SCANS_SUBMITTED.labels(profile="unit").inc()
    stats = {"queue_depth": {"scans": 3, "uploads": 0}, "scans": {"QUEUED": 3}, "workers_online": 2,
             "active_streams": 1}
    body, content_type = metrics.render(metrics.RedisCollector(lambda: stats))
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'certus_scans_submitted_total{profile="unit"}' in text
    assert 'certus_queue_depth{queue="scans"} 3.0' in text
    assert "certus_workers_online 2.0" in text
    assert "# TYPE certus_scan_duration_seconds histogram" in text


def test_profile_labels_stay_few():
    assert metrics.profile_label("Smoke") == "smoke"
    assert metrics.profile_label("team-special-profile-123") == "custom"
