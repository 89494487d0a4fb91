"""The Celery app factory, configured for long jobs that must be neither lost nor run twice."""

from __future__ import annotations

import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning

from tasks import names
from tasks.redis_client import celery_ssl_options, is_sentinel, tls_options, uses_tls
from tasks.settings import Settings


def quiet_known_warnings() -> None:
    """Running tasks are deliberately not cancelled when the broker connection drops (the scan's
    lease keeps a second delivery from running it twice): Celery's notice about that default, on
    every reconnect, is noise. Celery resets warning filters when it sets up a worker's logging,
    so a worker calls this again after that."""
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
                            category=CPendingDeprecationWarning)


quiet_known_warnings()


def broker_transport_options(settings: Settings) -> dict[str, object]:
    options: dict[str, object] = {"visibility_timeout": settings.visibility_timeout}
    if is_sentinel(settings.broker):
        options["master_name"] = settings.redis_sentinel_master
        sentinel_kwargs: dict[str, object] = {}
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password
        if uses_tls(settings.broker, settings):
            sentinel_kwargs.update(ssl=True, **tls_options(settings))
        if sentinel_kwargs:
            options["sentinel_kwargs"] = sentinel_kwargs
    return options


def create_celery(settings: Settings) -> Celery:
    app = Celery("certus_assurance", broker=settings.broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # The Redis record is the truth; results are never read.
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged only when it has finished, and handed back if its process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_transport_options(settings),
        broker_use_ssl=celery_ssl_options(settings) if uses_tls(settings.broker, settings) else None,
        broker_connection_retry_on_startup=True,
        task_default_queue=names.SCANS_QUEUE,
        task_routes={
            # The API names the queue when it sends (per-profile queues); these are the defaults.
            "scans.*": {"queue": names.SCANS_QUEUE},
            "uploads.*": {"queue": names.UPLOADS_QUEUE},
        },
        # Task events, so Flower shows tasks by name as they run. Workers send them; a `task-sent`
        # event from the sender would double the broker writes of every submit for a state
        # ("sent") that the scan record already shows as QUEUED.
        worker_send_task_events=True,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A refusal from Redis reaching the worker's consumer (a full Redis refusing a write, say)
        # reconnects it instead of ending the worker; see tasks/broker_recovery.py.
        broker_channel_error_retry=True,
    )
    app.certus_settings = settings
    return app
