"""The shared core: everything the API (``app/``), the workers (``workers/``) and the launcher
(``stack/``) agree on. Not only Celery tasks, despite the folder's name (the layout is fixed).

- The contract, typed:
  ``records`` (``ScanRecord``, ``UploadRecord``: the one mapping to and from Redis),
  ``states`` (scan status, upload status and tier, severity),
  ``errors`` (every ``ErrorCode`` and the ``CodedError`` base),
  ``keyspace`` (every Redis key name),
  ``store`` (scan records, their indexes and the one compare-and-set script),
  ``uploads`` (upload state), ``events`` (each scan's event stream),
  ``names`` (task and queue names), ``ids``, ``clock``.
- Who may do what: ``api_keys`` (API keys, principals, stream tokens), ``archives`` (uploaded
  archives and who owns them).
- What a scan runs: ``manifest`` / ``manifest_s3`` / ``profiles`` (the manifest's JSON Schema in
  ``schemas/``), and where it comes from: ``sources`` (the source kinds and their registry).
- History across scans: ``db`` (SQLAlchemy models and Alembic migrations), ``findings`` (its
  types) and ``findings_store`` (record, diff, list, triage).
- Extensions from outside the tree: ``plugins`` (the modules named by PLUGINS and WORKER_PLUGINS).
- The tasks and their transport: ``celery_app``, ``scan_tasks``, ``upload_tasks``, ``enqueue``,
  ``broker_recovery``, ``redis_client``, ``flower_app``.
- Rules applied on both sides: ``settings``, ``netpolicy`` (which hosts may be reached),
  ``pathsafe`` (which paths may be touched), ``textsafe`` (how outside text is shown),
  ``bundle_verifier`` (whether a bundle is intact; the CLI uses it too).
- Operations: ``logconfig``, ``threadlogs``, ``metrics``.

Importing this package loads none of them.
"""
