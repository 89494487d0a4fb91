"""The shared core: everything the API (``app/``), the workers (``workers/``) and the launcher
(``stack/``) agree on. Not only Celery tasks, despite the folder's name (the layout is fixed).

- The contract: ``store`` (scan records and their state machine), ``uploads`` (upload state),
  ``events`` (each scan's event stream), ``names`` (task and queue names), ``ids``, ``clock``,
  ``keys`` (API keys and principals), ``archives`` (uploaded archives and who owns them),
  ``manifest`` / ``manifest_s3`` / ``profiles`` (what a scan runs and where a manifest may come from).
- The tasks and their transport: ``celery_app``, ``scan_tasks``, ``upload_tasks``, ``enqueue``,
  ``broker_recovery``, ``redis_client``, ``flower_app``.
- Rules applied on both sides: ``settings``, ``netpolicy`` (which hosts may be reached),
  ``pathsafe`` (which paths may be touched), ``textsafe`` (how outside text is shown),
  ``bundle_verifier`` (whether a bundle is intact; the CLI uses it too).
- Operations: ``logconfig``, ``threadlogs``, ``metrics``.

Importing this package loads none of them.
"""
