"""The Celery app Flower loads (``celery -A tasks.flower_app flower``): the service's broker with its
TLS and Sentinel options, and no engine. Tasks show by their explicit names (``scans.run``,
``uploads.verify``, ``uploads.publish``); their arguments are ids only, never secrets."""

from __future__ import annotations

from tasks.celery_app import create_celery
from tasks.settings import Settings

app = create_celery(Settings.from_env())
