"""The thin service layer behind the scan endpoints: records, events and task sending.

Every method takes the caller (a ``Principal``) and raises ``app.services.errors``; nothing here
knows of HTTP or of a request, so it can be called from a request, a thread or a command alike.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

from celery import Celery

from app.limits import wait_seconds
from app.services.access import check_workspace, may_see, require
from app.services.errors import Conflict, Invalid, NotFound, RateLimited, Unavailable
from tasks import enqueue, manifest_s3, metrics, names, sources
from tasks import manifest as manifests
from tasks.api_keys import KeyCheck, Principal
from tasks.clock import utcnow_iso
from tasks.events import EventLog, InvalidEventId, check_event_id, encode_event, stream_key
from tasks.findings import FindingsError
from tasks.findings_store import FindingsStore
from tasks.ids import is_test_id, new_test_id
from tasks.netpolicy import HostNotAllowed, check_host
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.sources.base import inside_roots
from tasks.states import TERMINAL, ScanStatus
from tasks.store import InvalidCursor, KeyNotCurrent, KeyRateLimited, QueueFull, ScanStore, StreamAppend

log = logging.getLogger(__name__)

INTERNAL_FIELDS = frozenset({"attempt", "cancel_requested", "manifest", "manifest_signature", "worker", "worker_pid"})


def public_view(record: ScanRecord) -> dict[str, Any]:
    view = {k: v for k, v in record.to_dict().items() if k not in INTERNAL_FIELDS}
    # The URLs follow from the id; derive them so every record answers with them.
    base = f"/v1/security-scans/{record.test_id}"
    view["status_url"] = view.get("status_url") or base
    view["stream_url"] = view.get("stream_url") or f"{base}/stream"
    return view


class KeyConfirmation(Protocol):
    """The caller's API key, when its authentication was deferred to the write (``app.auth``): the
    write confirms the key and takes its token in the same atomic step (``ScanStore.create``)."""

    @property
    def check(self) -> KeyCheck | None:
        """What the write must confirm; None once the key is confirmed."""

    def settle(self) -> None:
        """The write ran the check: the key was confirmed (or refused) there."""

    def confirm(self) -> Principal:
        """Authenticate the key afresh (raising the refusal a revoked or exhausted key gets) and
        return the principal its stored record names now."""


class ScanService:
    def __init__(self, settings: Settings, store: ScanStore, events: EventLog, celery: Celery,
                 findings: FindingsStore | None = None) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.celery = celery
        self.inline_enqueue = enqueue.usable(celery, settings)
        self._findings = findings

    @property
    def findings(self) -> FindingsStore:
        """The findings store (made on first use: nothing connects until a request needs it)."""
        if self._findings is None:
            self._findings = FindingsStore.from_settings(self.settings)
        return self._findings

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
                                                 and inside_roots(parts.path, self.settings.allowed_source_roots)):
                raise HostNotAllowed("manifest_uri_not_allowed",
                                     "file manifests must lie inside an allowed root with local sources enabled")
        except HostNotAllowed as exc:
            raise Invalid(exc.code, str(exc), fields={"manifest_uri": [str(exc)]}) from exc

    def _check_source(self, data: dict[str, Any], principal: Principal) -> None:
        for name in ("manifest_uri", "manifest_signature_uri"):
            if data.get(name):
                self._check_manifest_uri(data[name], data["workspace_id"])
        try:
            sources.check(data, sources.CheckContext(self.settings, data["workspace_id"], principal))
        except sources.SourceRefused as exc:
            raise Invalid(exc.code, exc.message, fields={exc.field: [exc.detail]}) from exc

    def submit(self, principal: Principal | None, data: dict[str, Any],
               key: KeyConfirmation | None = None) -> dict[str, Any]:
        """Store a scan (QUEUED) of a workspace the caller holds and queue it. With ``key``, the
        write also confirms the caller's key (see ``KeyConfirmation``)."""
        caller = check_workspace(principal, data["workspace_id"])
        self._check_source(data, caller)
        self._check_baseline(data)
        record = self._new_record(data)
        test_id = record.test_id
        # The record, its first event and (on the store's Redis) its task are written in one step:
        # a worker never sees an id the store does not know, and a watcher can connect the moment
        # we answer. On another broker the task is sent once the record exists.
        first = encode_event("phase", {"phase": "queued", "message": "scan accepted and queued"})
        queue = names.scan_queue(record.profile, self.settings.scan_queue_per_profile)
        task = enqueue.build(self.celery, names.SCAN_RUN, test_id, [test_id], queue) if self.inline_enqueue else None
        event = StreamAppend(stream_key(test_id), "*", first, self.settings.stream_maxlen)
        try:
            self._write(record, event, task, key)
        except KeyNotCurrent:
            # The key remembered was revoked (or changed) since: authenticate afresh (refused for a
            # revoked key), then check again what the fresh principal may do.
            if key is None:
                raise
            check_workspace(key.confirm(), record.workspace_id)
            self._write(record, event, task, None)
        if task is None:
            self._send(test_id, record.workspace_id, queue)
        metrics.SCANS_SUBMITTED.labels(profile=metrics.profile_label(record.profile)).inc()
        return {k: getattr(record, k) for k in ("test_id", "workspace_id", "component_id", "assessment_id",
                                                "status", "profile", "manifest_digest", "stream_url", "status_url")}

    def _new_record(self, data: dict[str, Any]) -> ScanRecord:
        test_id = new_test_id()
        manifest_digest = None
        if "manifest" in data:
            manifest_digest = manifests.digest(manifests.inline_text(data["manifest"]))
        base = f"/v1/security-scans/{test_id}"
        return ScanRecord(
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
            baseline=data.get("baseline", "auto"),
            baseline_branch=data.get("baseline_branch"),
            stream_url=f"{base}/stream",
            status_url=base,
            **sources.record_fields(data),
        )

    def _check_baseline(self, data: dict[str, Any]) -> None:
        """A baseline named by its test_id must be a recorded SUCCEEDED scan of the same workspace and
        component (another workspace's scan is "not found" like an unknown one). When the database
        cannot be reached the scan is taken: its worker looks again, and without the baseline it
        compares with nothing (every finding new) and says so in a warning."""
        baseline = data.get("baseline")
        if baseline in (None, "auto", "none"):
            return
        try:
            ref = self.findings.scan(baseline)
        except FindingsError as exc:
            log.warning("baseline %s not checked at submit: %s", baseline, exc.code)
            return
        if ref is None or (ref.workspace_id, ref.component_id) != (data["workspace_id"], data["component_id"]):
            message = f"baseline {baseline} is not a recorded scan of this workspace and component"
            raise Invalid("baseline_not_found", message, fields={"baseline": [message]})
        if ref.status != ScanStatus.SUCCEEDED:
            raise Conflict("scan_not_succeeded", f"baseline {baseline} ended {ref.status}, not SUCCEEDED")

    def _write(self, record: ScanRecord, event: StreamAppend, task: enqueue.QueuedTask | None,
               key: KeyConfirmation | None) -> None:
        try:
            self.store.create(record, event=event, queue_cap=self.settings.max_queued_per_workspace, task=task,
                              key_check=key.check if key is not None else None)
        except QueueFull as exc:
            _settle(key)
            raise RateLimited("queue_full",
                              f"the workspace already has {exc.queued} scans queued; retry when some have started",
                              retry_after=30) from exc
        except KeyRateLimited as exc:
            _settle(key)
            wait = wait_seconds(exc.wait_ms)
            raise RateLimited("rate_limited", f"too many requests for this key; retry in {wait} s",
                              retry_after=wait) from exc
        _settle(key)

    def _send(self, test_id: str, workspace_id: str, queue: str) -> None:
        try:
            self.celery.send_task(names.SCAN_RUN, args=[test_id], task_id=test_id, queue=queue)
        except Exception as exc:
            log.error("enqueue failed for %s: %s", test_id, exc.__class__.__name__)
            self.store.delete(test_id, workspace_id)
            self.events.redis.delete(stream_key(test_id))
            raise Unavailable("queue_unavailable", "the scan could not be queued; nothing was kept",
                              retry_after=5) from exc

    # -- read --------------------------------------------------------------------------------
    def get(self, principal: Principal | None, test_id: str) -> ScanRecord:
        """The scan, if the caller may see it. Every endpoint that names a scan comes through here:
        another workspace's scan is "not found", like one that does not exist."""
        caller = require(principal)
        record = self.store.get(test_id) if is_test_id(test_id) else None
        if record is None or not may_see(caller, record.workspace_id):
            raise NotFound("scan_not_found", "no such scan")
        return record

    def list(self, principal: Principal | None, query: dict[str, Any]) -> dict[str, Any]:
        """One page of the scans the caller may see, newest first."""
        caller = require(principal)
        workspaces = None
        if not caller.all_workspaces:
            if query.get("workspace_id"):
                check_workspace(caller, query["workspace_id"])
            elif len(caller.workspaces) == 1:
                query = {**query, "workspace_id": next(iter(caller.workspaces))}
            else:
                workspaces = caller.workspaces
        try:
            items, cursor = self.store.list(**query, workspaces=workspaces)
        except InvalidCursor as exc:
            raise Invalid("invalid_cursor", str(exc), fields={"cursor": [str(exc)]}) from exc
        return {"items": [public_view(r) for r in items], "next_cursor": cursor}

    def events_page(self, scan: ScanRecord, after: str, limit: int) -> dict[str, Any]:
        """Up to ``limit`` events of a scan (one ``get`` returned) after the event id ``after``."""
        try:
            after = check_event_id(after)
        except InvalidEventId as exc:
            raise Invalid("invalid_event_id", str(exc), fields={"after": [str(exc)]}) from exc
        events = self.events.range(scan.test_id, after, limit)
        complete = any(e["type"] == "scan_complete" for e in events)
        next_after = events[-1]["id"] if events else after
        return {"events": events, "next_after": next_after, "complete": complete}

    def is_finished(self, test_id: str) -> bool:
        status = self.store.get_fields(test_id, "status")["status"]
        return status is None or status in TERMINAL

    # -- cancel ------------------------------------------------------------------------------
    def cancel(self, principal: Principal | None, test_id: str) -> dict[str, Any]:
        record = self.get(principal, test_id)
        if record.status in TERMINAL:
            raise Conflict("scan_finished", f"the scan already ended {record.status}")
        event_id = self.events.next_id(test_id)
        complete = StreamAppend(
            stream_key(test_id), event_id,
            encode_event("scan_complete", {"status": ScanStatus.CANCELLED, "manifest_digest": record.manifest_digest,
                                           "bundle": None, "summary": None}),
            self.settings.stream_maxlen)
        # A queued scan is cancelled here; a running one is flagged and its worker stops it.
        result = self.store.transition(test_id, ScanStatus.CANCELLED, allowed_from=[ScanStatus.QUEUED],
                                       event=complete, completed_at=utcnow_iso(), cancel_requested=True)
        if not result.ok:
            if result.previous == ScanStatus.RUNNING:
                self.store.update(test_id, cancel_requested=True)
            elif result.previous in TERMINAL:
                raise Conflict("scan_finished", f"the scan already ended {result.previous}")
        else:
            self.events.expire(test_id)
        return {"test_id": test_id, "status": ScanStatus.CANCELLED if result.ok else ScanStatus.RUNNING,
                "cancel_requested": True}


def _settle(key: KeyConfirmation | None) -> None:
    if key is not None:
        key.settle()
