"""Thin upload tasks on the ``uploads`` queue: verify with Trust, then one publish task per destination."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import redis
from celery import Celery
from celery.exceptions import Reject

from tasks import names
from tasks.scan_tasks import EngineTask


class TransientUploadError(Exception):
    """A publish step failed in a way that may succeed later (network, 5xx, throttling)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


log = logging.getLogger(__name__)
# How long a task whose state store is unreachable waits before handing its message back.
STORE_OUTAGE_PAUSE = 2.0


class UploadEngine(Protocol):
    def verify_upload(self, test_id: str, request_id: str, last_attempt: bool = True) -> list[str]: ...
    def note_verify_retry(self, test_id: str, request_id: str, reason: str, countdown: int) -> None: ...
    def publish_upload(self, test_id: str, request_id: str, destination: str) -> None: ...
    def fail_upload(self, test_id: str, request_id: str, destination: str, reason: str) -> None: ...
    def note_retry(self, test_id: str, request_id: str, destination: str, reason: str, countdown: int) -> None: ...


def backoff(base: int, retries: int) -> int:
    return int(min(300, base * (2 ** retries)))


def store_outage(exc: redis.RedisError) -> Reject:
    """Redis (the state store and the broker) is down: nothing can be recorded and no retry can be
    queued. The message goes back unacknowledged after a pause (if Redis cannot take it back now,
    it stays among the unacknowledged and is restored once Redis is there), so the step runs again."""
    log.warning("upload step postponed: Redis unavailable (%s)", exc.__class__.__name__)
    time.sleep(STORE_OUTAGE_PAUSE)
    return Reject(f"redis unavailable: {exc.__class__.__name__}", requeue=True)


def register(app: Celery) -> None:
    settings = app.certus_settings
    limits: dict[str, Any] = {"soft_time_limit": settings.upload_soft_time_limit,
                              "time_limit": settings.upload_hard_time_limit}

    def uploads_engine(task: EngineTask) -> UploadEngine:
        engine = getattr(task.app, "certus_uploads", None)
        if engine is None:
            raise RuntimeError("no upload engine attached to this Celery app (start the worker via workers.bootstrap)")
        return engine  # type: ignore[no-any-return,unused-ignore]

    @app.task(name=names.UPLOAD_VERIFY, base=EngineTask, bind=True, **limits)
    def verify(self: EngineTask, test_id: str, request_id: str) -> None:
        engine = uploads_engine(self)
        last = self.request.retries >= settings.upload_max_retries
        try:
            destinations = engine.verify_upload(test_id, request_id, last_attempt=last)
        except redis.RedisError as exc:
            raise store_outage(exc) from exc
        except TransientUploadError as exc:
            countdown = backoff(settings.upload_retry_backoff, self.request.retries)
            engine.note_verify_retry(test_id, request_id, exc.reason, countdown)
            raise self.retry(exc=exc, countdown=countdown, max_retries=settings.upload_max_retries) from exc
        for destination in destinations:
            try:
                app.send_task(names.UPLOAD_PUBLISH, args=[test_id, request_id, destination],
                              queue=names.UPLOADS_QUEUE)
            except Exception as exc:  # noqa: BLE001 - never leave a permitted upload without its tasks
                engine.fail_upload(test_id, request_id, destination,
                                   f"{destination}: queue_unavailable: the publish task could not be queued "
                                   f"({exc.__class__.__name__})")

    @app.task(name=names.UPLOAD_PUBLISH, base=EngineTask, bind=True, **limits)
    def publish(self: EngineTask, test_id: str, request_id: str, destination: str) -> None:
        engine = uploads_engine(self)
        try:
            engine.publish_upload(test_id, request_id, destination)
        except redis.RedisError as exc:
            raise store_outage(exc) from exc
        except TransientUploadError as exc:
            if self.request.retries >= settings.upload_max_retries:
                engine.fail_upload(test_id, request_id, destination,
                                   f"{destination}: gave up after {self.request.retries + 1} attempts: {exc.reason}")
                return
            countdown = backoff(settings.upload_retry_backoff, self.request.retries)
            engine.note_retry(test_id, request_id, destination, exc.reason, countdown)
            raise self.retry(exc=exc, countdown=countdown, max_retries=settings.upload_max_retries) from exc
