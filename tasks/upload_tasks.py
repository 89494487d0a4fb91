"""Thin upload tasks on the ``uploads`` queue: verify with Trust, then one publish task per destination.

A transient failure is retried with Celery's own exponential backoff: the tasks carry Celery's
``max_retries``, ``retry_backoff``, ``retry_backoff_max`` and ``retry_jitter`` options, and the delay
is Celery's ``get_exponential_backoff_interval`` for them (``UPLOAD_RETRY_BACKOFF`` · 2^n s, at most
``RETRY_BACKOFF_MAX``). The retry is asked for by the task itself rather than by ``autoretry_for``,
so the delay it announces in the upload events is the one it asked for, and the last attempt can
end the upload instead of raising.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import redis
from celery import Celery, Task
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval

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
# The longest wait between two attempts of a verify or publish step, in seconds.
RETRY_BACKOFF_MAX = 300


class UploadEngine(Protocol):
    def verify_upload(self, test_id: str, request_id: str, last_attempt: bool = True) -> list[str]: ...
    def note_verify_retry(self, test_id: str, request_id: str, reason: str, countdown: int) -> None: ...
    def publish_upload(self, test_id: str, request_id: str, destination: str) -> None: ...
    def fail_upload(self, test_id: str, request_id: str, destination: str, reason: str) -> None: ...
    def note_retry(self, test_id: str, request_id: str, destination: str, reason: str, countdown: int) -> None: ...


def retry_countdown(task: Task) -> int:
    """Seconds before the next attempt of ``task``: Celery's exponential backoff for the task's own
    ``retry_backoff``, ``retry_backoff_max`` and ``retry_jitter`` options, the same delay
    ``autoretry_for`` would ask for (without its rounding of a zero factor up to one)."""
    return int(get_exponential_backoff_interval(factor=task.retry_backoff, retries=task.request.retries,
                                                maximum=task.retry_backoff_max, full_jitter=task.retry_jitter))


def last_attempt(task: Task) -> bool:
    return bool(task.request.retries >= task.max_retries)


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
    # Celery's retry options; no jitter, so the delays are the documented ones. ``shared=False``: the
    # tasks, with these options, belong to this app only, not to every app made later in the process.
    retries: dict[str, Any] = {"max_retries": settings.upload_max_retries,
                               "retry_backoff": settings.upload_retry_backoff,
                               "retry_backoff_max": RETRY_BACKOFF_MAX, "retry_jitter": False, "shared": False}

    def uploads_engine(task: EngineTask) -> UploadEngine:
        engine = getattr(task.app, "certus_uploads", None)
        if engine is None:
            raise RuntimeError("no upload engine attached to this Celery app (start the worker via workers.bootstrap)")
        return engine  # type: ignore[no-any-return,unused-ignore]

    @app.task(name=names.UPLOAD_VERIFY, base=EngineTask, bind=True, **limits, **retries)
    def verify(self: EngineTask, test_id: str, request_id: str) -> None:
        engine = uploads_engine(self)
        try:
            destinations = engine.verify_upload(test_id, request_id, last_attempt=last_attempt(self))
        except redis.RedisError as exc:
            raise store_outage(exc) from exc
        except TransientUploadError as exc:
            countdown = retry_countdown(self)
            engine.note_verify_retry(test_id, request_id, exc.reason, countdown)
            raise self.retry(exc=exc, countdown=countdown) from exc
        for destination in destinations:
            try:
                app.send_task(names.UPLOAD_PUBLISH, args=[test_id, request_id, destination],
                              queue=names.UPLOADS_QUEUE)
            except Exception as exc:  # noqa: BLE001 - never leave a permitted upload without its tasks
                engine.fail_upload(test_id, request_id, destination,
                                   f"{destination}: queue_unavailable: the publish task could not be queued "
                                   f"({exc.__class__.__name__})")

    @app.task(name=names.UPLOAD_PUBLISH, base=EngineTask, bind=True, **limits, **retries)
    def publish(self: EngineTask, test_id: str, request_id: str, destination: str) -> None:
        engine = uploads_engine(self)
        try:
            engine.publish_upload(test_id, request_id, destination)
        except redis.RedisError as exc:
            raise store_outage(exc) from exc
        except TransientUploadError as exc:
            if last_attempt(self):
                engine.fail_upload(test_id, request_id, destination,
                                   f"{destination}: gave up after {self.request.retries + 1} attempts: {exc.reason}")
                return
            countdown = retry_countdown(self)
            engine.note_retry(test_id, request_id, destination, exc.reason, countdown)
            raise self.retry(exc=exc, countdown=countdown) from exc
