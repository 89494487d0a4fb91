"""The upload tasks' retries: Celery's own exponential backoff for the tasks' Celery options, the
delay announced in the upload events is the one asked of Celery, the last attempt ends the upload
(publish) or decides it (verify), and a Redis outage hands the message back. A real Celery app
runs the tasks eagerly (a retry runs at once, its countdown is still the one Celery was given);
the engine is a recording implementation of the tasks' port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.signals import task_retry

from tasks import names, upload_tasks
from tasks.celery_app import create_celery
from tasks.settings import Settings
from tasks.upload_tasks import RETRY_BACKOFF_MAX, TransientUploadError


class FlakyEngine:
    """Fails the first ``failures`` calls of each step with ``error``, then succeeds."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or TransientUploadError("registry_unavailable: 503")
        self.calls: list[tuple[str, Any]] = []

    def _step(self, name: str, detail: Any) -> None:
        self.calls.append((name, detail))
        if sum(1 for n, _ in self.calls if n == name) <= self.failures:
            raise self.error

    def verify_upload(self, test_id: str, request_id: str, last_attempt: bool = True) -> list[str]:
        self._step("verify", last_attempt)
        return []

    def publish_upload(self, test_id: str, request_id: str, destination: str) -> None:
        self._step("publish", destination)

    def note_verify_retry(self, test_id: str, request_id: str, reason: str, countdown: int) -> None:
        self.calls.append(("verify_retry", countdown))

    def note_retry(self, test_id: str, request_id: str, destination: str, reason: str, countdown: int) -> None:
        self.calls.append(("retry", countdown))

    def fail_upload(self, test_id: str, request_id: str, destination: str, reason: str) -> None:
        self.calls.append(("failed", reason))


def _app(engine: FlakyEngine, **settings: Any) -> Any:
    app = create_celery(Settings(redis_url="redis://127.0.0.1:1/0", **settings))
    app.conf.task_always_eager = True
    app.certus_uploads = engine
    upload_tasks.register(app)
    return app


@pytest.fixture()
def asked() -> Iterator[list[Any]]:
    """The countdowns the tasks handed to Celery with their retries."""
    seen: list[Any] = []

    def record(sender: Any = None, reason: Any = None, **_: Any) -> None:
        seen.append(reason.when)

    task_retry.connect(record, weak=False)
    yield seen
    task_retry.disconnect(record)


def _of(engine: FlakyEngine, name: str) -> list[Any]:
    return [detail for n, detail in engine.calls if n == name]


def test_the_tasks_carry_celerys_retry_options() -> None:
    app = _app(FlakyEngine(0), upload_max_retries=4, upload_retry_backoff=7)
    for name in (names.UPLOAD_VERIFY, names.UPLOAD_PUBLISH):
        task = app.tasks[name]
        assert (task.max_retries, task.retry_backoff, task.retry_backoff_max, task.retry_jitter) == \
            (4, 7, RETRY_BACKOFF_MAX, False)


def test_publish_retries_double_up_to_the_cap_and_the_last_attempt_fails_the_upload(asked: list[Any]) -> None:
    engine = FlakyEngine(failures=99)
    app = _app(engine, upload_max_retries=7, upload_retry_backoff=5)
    app.tasks[names.UPLOAD_PUBLISH].apply(args=["test_1", "req", "s3"])
    announced = _of(engine, "retry")
    assert announced == [5, 10, 20, 40, 80, 160, 300]  # UPLOAD_RETRY_BACKOFF * 2^n, at most 300
    assert asked == announced  # what the events say is what Celery was asked for
    assert len(_of(engine, "publish")) == 8
    assert _of(engine, "failed") == ["s3: gave up after 8 attempts: registry_unavailable: 503"]


def test_a_publish_that_recovers_is_not_failed(asked: list[Any]) -> None:
    engine = FlakyEngine(failures=2)
    _app(engine, upload_max_retries=5, upload_retry_backoff=1).tasks[names.UPLOAD_PUBLISH].apply(
        args=["test_1", "req", "s3"])
    assert _of(engine, "retry") == asked == [1, 2]
    assert len(_of(engine, "publish")) == 3 and _of(engine, "failed") == []


def test_verification_is_retried_and_only_the_last_attempt_may_deny(asked: list[Any]) -> None:
    engine = FlakyEngine(failures=2)
    app = _app(engine, upload_max_retries=2, upload_retry_backoff=3)
    app.tasks[names.UPLOAD_VERIFY].apply(args=["test_1", "req"])
    assert _of(engine, "verify") == [False, False, True]  # last_attempt on the third call only
    assert _of(engine, "verify_retry") == asked == [3, 6]


def test_a_zero_backoff_retries_at_once(asked: list[Any]) -> None:
    engine = FlakyEngine(failures=3)
    _app(engine, upload_max_retries=3, upload_retry_backoff=0).tasks[names.UPLOAD_PUBLISH].apply(
        args=["test_1", "req", "s3"])
    assert _of(engine, "retry") == asked == [0, 0, 0]
    assert _of(engine, "failed") == []


def test_without_retries_the_first_failure_is_the_last(asked: list[Any]) -> None:
    engine = FlakyEngine(failures=1)
    app = _app(engine, upload_max_retries=0, upload_retry_backoff=5)
    app.tasks[names.UPLOAD_PUBLISH].apply(args=["test_1", "req", "s3"])
    assert _of(engine, "failed") == ["s3: gave up after 1 attempts: registry_unavailable: 503"]
    app.tasks[names.UPLOAD_VERIFY].apply(args=["test_1", "req"])
    assert _of(engine, "verify") == [True] and asked == []


def test_a_redis_outage_hands_the_message_back_instead_of_retrying(asked: list[Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_tasks, "STORE_OUTAGE_PAUSE", 0)
    engine = FlakyEngine(failures=1, error=redis.ConnectionError("down"))
    app = _app(engine, upload_max_retries=5, upload_retry_backoff=5)
    for name, args in ((names.UPLOAD_PUBLISH, ["test_1", "req", "s3"]), (names.UPLOAD_VERIFY, ["test_1", "req"])):
        result = app.tasks[name].apply(args=args)
        assert result.state == "REJECTED"
    assert asked == [] and _of(engine, "retry") == _of(engine, "failed") == []
