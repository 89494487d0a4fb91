"""The contract the API and the workers share: settings, Celery app, task names, state and events."""
