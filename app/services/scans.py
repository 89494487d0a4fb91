"""The thin service layer behind the scan endpoints: records, events and task sending."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from app.auth import confirm_deferred, current_principal, deferred_key, may_see, rate_limited, settle_deferred
from app.errors import APIError, not_found
from app.limits import wait_seconds
from app.services.archives import usable_archive
from tasks import archives, enqueue, manifest_s3, metrics, names
from tasks import manifest as manifests
from tasks.api_keys import KeyCheck
from tasks.clock import utcnow_iso
from tasks.events import EventLog, encode_event, stream_key
from tasks.ids import is_test_id, new_test_id
from tasks.netpolicy import HostNotAllowed, check_host, check_url
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import (
    CANCELLED,
    QUEUED,
    RUNNING,
    TERMINAL,
    InvalidCursor,
    KeyNotCurrent,
    KeyRateLimited,
    QueueFull,
    ScanStore,
    StreamAppend,
)

log = logging.getLogger(__name__)

INTERNAL_FIELDS = frozenset({"attempt", "cancel_requested", "manifest", "manifest_signature", "worker", "worker_pid"})


def public_view(record: ScanRecord) -> dict[str, Any]:
    view = {k: v for k, v in record.to_dict().items() if k not in INTERNAL_FIELDS}
    # The URLs follow from the id; derive them so every record answers with them.
    base = f"/v1/security-scans/{record.test_id}"
    view["status_url"] = view.get("status_url") or base
    view["stream_url"] = view.get("stream_url") or f"{base}/stream"
    return view


def _confined(path: str, roots: tuple[str, ...]) -> bool:
    if not path.startswith("/") or "\x00" in path:
        return False
    resolved = Path(path).resolve()
    return any(resolved == Path(root) or Path(root) in resolved.parents for root in roots)


class ScanService:
    def __init__(self, settings: Settings, store: ScanStore, events: EventLog, celery: Celery) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.celery = celery
        self.inline_enqueue = enqueue.usable(celery, settings)

    # -- submit ------------------------------------------------------------------------------
    def _check_manifest_uri(self, uri: str, workspace_id: str) -> None:
        parts = urlsplit(uri)
        try:
            if parts.scheme == "https" and parts.hostname:
                check_host(parts.hostname, parts.port, self.settings.git_allowed_hosts)
            elif parts.scheme == "s3" and not manifest_s3.allowed(uri, workspace_id, self.settings.manifest_s3_allowed):
                raise HostNotAllowed("manifest_source_not_allowed",
                                     "s3:// manifests may only be read from the buckets and prefixes allowed for them")
            elif parts.scheme == "file" and not (self.settings.allow_local_sources
                                                 and _confined(parts.path, self.settings.allowed_source_roots)):
                raise HostNotAllowed("manifest_uri_not_allowed",
                                     "file manifests must lie inside an allowed root with local sources enabled")
        except HostNotAllowed as exc:
            raise APIError(422, exc.code, str(exc), fields={"manifest_uri": [str(exc)]}) from exc

    def _check_source(self, data: dict[str, Any]) -> None:
        for name in ("manifest_uri", "manifest_signature_uri"):
            if data.get(name):
                self._check_manifest_uri(data[name], data["workspace_id"])
        source_type = data["source_type"]
        if source_type == "git":
            try:
                check_url(data["git_url"], self.settings.git_allowed_hosts, self.settings.allow_local_sources)
            except HostNotAllowed as exc:
                raise APIError(422, exc.code, str(exc), fields={"git_url": [str(exc)]}) from exc
            return
        field = "directory_path" if source_type == "directory" else "archive_path"
        path = data[field]
        if source_type == "archive" and archives.is_archive_id(path):
            # Another workspace's upload answers as an unknown one.
            if not usable_archive(self.settings, path, data["workspace_id"]):
                raise APIError(422, "archive_not_found", "no uploaded archive has that id",
                               fields={field: ["unknown upload id"]})
            return
        if not Path(path).is_absolute() or not _confined(path, self.settings.allowed_source_roots):
            raise APIError(422, "path_not_allowed", f"{field} must lie inside a configured allowed root",
                           fields={field: ["outside the allowed roots"]})

    def _check_workspace(self, workspace_id: str) -> None:
        if not may_see(workspace_id):
            # Not 403: a key must not learn which workspaces exist.
            raise APIError(404, "workspace_not_found", "no such workspace")

    def submit(self, data: dict[str, Any]) -> dict[str, Any]:
        self._check_workspace(data["workspace_id"])
        self._check_source(data)
        test_id = new_test_id()
        manifest_digest = None
        if "manifest" in data:
            manifest_digest = manifests.digest(manifests.inline_text(data["manifest"]))
        base = f"/v1/security-scans/{test_id}"
        record = ScanRecord(
            test_id=test_id,
            workspace_id=data["workspace_id"],
            component_id=data["component_id"],
            assessment_id=data["assessment_id"],
            profile=data["profile"],
            manifest=data.get("manifest"),
            manifest_path=data.get("manifest_path"),
            manifest_uri=data.get("manifest_uri"),
            manifest_signature_uri=data.get("manifest_signature_uri"),
            manifest_signature=data.get("manifest_signature"),
            manifest_digest=manifest_digest,
            requested_by=data.get("requested_by"),
            stream_url=f"{base}/stream",
            status_url=base,
            source_type=data.get("source_type"),
            git_url=data.get("git_url"),
            branch=data.get("branch"),
            commit=data.get("commit"),
            directory_path=data.get("directory_path"),
            archive_path=data.get("archive_path"),
        )
        # The record, its first event and (on the store's Redis) its task are written in one step:
        # a worker never sees an id the store does not know, and a watcher can connect the moment
        # we answer. On another broker the task is sent once the record exists.
        first = encode_event("phase", {"phase": "queued", "message": "scan accepted and queued"})
        queue = names.scan_queue(record.profile, self.settings.scan_queue_per_profile)
        task = enqueue.build(self.celery, names.SCAN_RUN, test_id, [test_id], queue) if self.inline_enqueue else None
        event = StreamAppend(stream_key(test_id), "*", first, self.settings.stream_maxlen)
        try:
            self._write(record, event, task, deferred_key())
        except KeyNotCurrent:
            # The key this process remembered was revoked (or changed) since: authenticate afresh
            # (401 for a revoked key), then check again what the fresh principal may do.
            confirm_deferred()
            self._check_workspace(record.workspace_id)
            self._write(record, event, task, None)
        if task is None:
            self._send(test_id, record.workspace_id, queue)
        metrics.SCANS_SUBMITTED.labels(profile=metrics.profile_label(record.profile)).inc()
        view = record.to_dict()
        return {k: view[k] for k in ("test_id", "workspace_id", "component_id", "assessment_id", "status",
                                     "profile", "manifest_digest", "stream_url", "status_url")}

    def _write(self, record: ScanRecord, event: StreamAppend, task: enqueue.QueuedTask | None,
               key_check: KeyCheck | None) -> None:
        try:
            self.store.create(record, event=event, queue_cap=self.settings.max_queued_per_workspace, task=task,
                              key_check=key_check)
        except QueueFull as exc:
            settle_deferred()
            raise APIError(429, "queue_full",
                           f"the workspace already has {exc.queued} scans queued; retry when some have started",
                           headers={"Retry-After": "30"}) from exc
        except KeyRateLimited as exc:
            settle_deferred()
            raise rate_limited(wait_seconds(exc.wait_ms)) from exc
        settle_deferred()

    def _send(self, test_id: str, workspace_id: str, queue: str) -> None:
        try:
            self.celery.send_task(names.SCAN_RUN, args=[test_id], task_id=test_id, queue=queue)
        except Exception as exc:
            log.error("enqueue failed for %s: %s", test_id, exc.__class__.__name__)
            self.store.delete(test_id, workspace_id)
            self.events.redis.delete(stream_key(test_id))
            raise APIError(503, "queue_unavailable", "the scan could not be queued; nothing was kept",
                           headers={"Retry-After": "5"}) from exc

    # -- read --------------------------------------------------------------------------------
    def get(self, test_id: str) -> ScanRecord:
        record = self.store.get(test_id) if is_test_id(test_id) else None
        # Every endpoint that names a scan comes through here: another workspace's scan is "not found".
        if record is None or not may_see(record.workspace_id):
            raise not_found()
        return record

    def list(self, query: dict[str, Any]) -> dict[str, Any]:
        principal = current_principal()
        workspaces = None
        if principal is not None and not principal.all_workspaces:
            if query.get("workspace_id"):
                self._check_workspace(query["workspace_id"])
            elif len(principal.workspaces) == 1:
                query = {**query, "workspace_id": next(iter(principal.workspaces))}
            else:
                workspaces = principal.workspaces
        try:
            items, cursor = self.store.list(**query, workspaces=workspaces)
        except InvalidCursor as exc:
            raise APIError(422, "invalid_cursor", str(exc), fields={"cursor": [str(exc)]}) from exc
        return {"items": [public_view(r) for r in items], "next_cursor": cursor}

    def is_finished(self, test_id: str) -> bool:
        status = self.store.get_fields(test_id, "status")["status"]
        return status is None or status in TERMINAL

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, test_id: str) -> dict[str, Any]:
        record = self.get(test_id)
        if record.status in TERMINAL:
            raise APIError(409, "scan_finished", f"the scan already ended {record.status}")
        event_id = self.events.next_id(test_id)
        complete = StreamAppend(
            stream_key(test_id), event_id,
            encode_event("scan_complete", {"status": CANCELLED, "manifest_digest": record.manifest_digest,
                                           "bundle": None, "summary": None}),
            self.settings.stream_maxlen)
        # A queued scan is cancelled here; a running one is flagged and its worker stops it.
        result = self.store.transition(test_id, CANCELLED, allowed_from=[QUEUED], event=complete,
                                       completed_at=utcnow_iso(), cancel_requested=True)
        if not result.ok:
            if result.previous == RUNNING:
                self.store.update(test_id, cancel_requested=True)
            elif result.previous in TERMINAL:
                raise APIError(409, "scan_finished", f"the scan already ended {result.previous}")
        else:
            self.events.expire(test_id)
        return {"test_id": test_id, "status": CANCELLED if result.ok else RUNNING, "cancel_requested": True}
