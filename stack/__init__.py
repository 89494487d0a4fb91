"""Starts the service's processes on one machine: an embedded Redis when none is configured, the
API under gunicorn and Celery workers. Used by ``make run``, ``make cluster`` and the tests."""
