"""The scan engine: one ``ScanJob`` per delivery owns the lifecycle (start, heartbeat, finish, fail)
and runs the phases source -> manifest -> scanners -> bundle."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded

from tasks import manifest as manifests
from tasks import metrics
from tasks.clock import utcnow_iso
from tasks.errors import CodedError, ErrorCode
from tasks.events import EventLog, encode_event, stream_key
from tasks.logconfig import test_id_var
from tasks.profiles import builtin
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.states import TERMINAL, ScanStatus
from tasks.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    ScanStore,
    StreamAppend,
)
from workers.bundle import Bundle, storage_full
from workers.emitter import ScanEmitter
from workers.findings import Conclusion, FindingsRecorder, ScanContext, ScanFindings, counted, group
from workers.lease import Lease
from workers.pipeline.manifest import ResolvedManifest, resolve_manifest
from workers.pipeline.policy import evaluate
from workers.pipeline.tools import Selection, ToolRunReport, run_tools, select_tools
from workers.redact import Redactor
from workers.sandbox import Sandbox, SandboxUnavailable
from workers.scanners.base import Scanner
from workers.scanners.registry import all_scanners
from workers.signing import attestation
from workers.signing.signing_keys import Signer, SigningKeyError, load_signer
from workers.sources import git
from workers.sources.errors import SourceError
from workers.sources.fetch import FetchedSource, fetch_source

log = logging.getLogger(__name__)
# One minute of a manifest's `bundle.runtimeCeilingMinutes`, in seconds (tests shorten it).
CEILING_UNIT_SECONDS = 60.0


CANCEL_POLL_SECONDS = 1.0
STORAGE_FULL = ErrorCode.STORAGE_FULL


class Stop(CodedError):
    """The scan must stop now: cancelled, lease lost, or past its time limit."""

    def __init__(self, status: ScanStatus, code: ErrorCode | str, message: str) -> None:
        super().__init__(code, message)
        self.status = status


class ScanEngine:
    def __init__(self, settings: Settings, client: redis.Redis,
                 scanners: dict[str, Scanner] | None = None) -> None:
        self.settings = settings
        self.redis = client
        self.store = ScanStore(client, retention_seconds=settings.retention_seconds)
        self.events = EventLog(client, maxlen=settings.stream_maxlen, block_ms=settings.ws_block_ms,
                               retention_seconds=settings.retention_seconds)
        self.scanners = scanners if scanners is not None else all_scanners(settings)
        self.findings = FindingsRecorder(settings)
        self._signer: Signer | None = None
        self._signer_lock = threading.Lock()

    def signer(self) -> Signer:
        """The service's signing key, loaded (or generated) once per process on first use."""
        with self._signer_lock:
            if self._signer is None:
                self._signer = load_signer(self.settings)
            return self._signer

    def run_scan(self, test_id: str, *, delivery: dict[str, Any] | None = None) -> None:
        token = test_id_var.set(test_id)
        try:
            record = self.store.get(test_id)
            if record is None:
                log.warning("scan %s has no record (expired or never stored); nothing to do", test_id)
                return
            if record.status in TERMINAL:
                log.info("scan %s already %s; delivery ignored", test_id, record.status)
                return
            job = ScanJob(self, record, delivery or {})
            lease = Lease(self.redis, test_id, self.settings.lease_seconds, on_beat=job.on_heartbeat)
            if not self._acquire(lease, test_id):
                return
            job.record = self.store.get(test_id) or record
            job.lease = lease
            try:
                job.run()
            finally:
                lease.release()
        finally:
            test_id_var.reset(token)

    def _acquire(self, lease: Lease, test_id: str) -> bool:
        """Take the scan's lease. A redelivery after a killed worker finds the dead attempt's lease
        still set: wait until it lapses (at most one lease lifetime and a half) rather than drop
        the delivery; a lease that keeps being renewed belongs to a live worker."""
        deadline = time.monotonic() + self.settings.lease_seconds * 1.5
        while True:
            if lease.acquire():
                status = self.store.get_fields(test_id, "status")["status"]
                if status in TERMINAL or status is None:
                    lease.release()
                    log.info("scan %s ended while this delivery waited; ignored", test_id)
                    return False
                return True
            status = self.store.get_fields(test_id, "status")["status"]
            if status in TERMINAL or status is None or time.monotonic() > deadline:
                log.info("scan %s is %s and held by another worker; delivery ignored", test_id, status)
                return False
            time.sleep(0.5)


class ScanJob:
    def __init__(self, engine: ScanEngine, record: ScanRecord, delivery: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.store = engine.store
        self.record = record
        self.test_id: str = record.test_id
        self.redactor = Redactor()
        self.emitter = ScanEmitter(engine.events, self.test_id, self.redactor)
        self.token = secrets.token_hex(4)
        self.workspace = Path(self.settings.work_root) / f"{self.test_id}.{self.token}"
        self.bundle: Bundle | None = None
        self.lease: Lease | None = None
        self.cancel = threading.Event()
        self._next_cancel_poll = 0.0
        self.deadline: float | None = None
        self.phases: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []
        self.warnings: list[dict[str, str]] = []
        self.manifest: ResolvedManifest | None = None
        self.checkout: git.GitCheckout | None = None
        self.source: FetchedSource | None = None
        self.tools: ToolRunReport | None = None
        self.logical: ScanFindings | None = None
        self.conclusion: Conclusion | None = None
        self.started_at = utcnow_iso()
        self.started_mono = time.monotonic()
        self.delivery = delivery or {}

    # -- lifecycle ---------------------------------------------------------------------------
    def on_heartbeat(self) -> None:
        """Called by the lease thread: publish liveness and pick up a cancel request."""
        self.store.update(self.test_id, heartbeat_at=utcnow_iso())
        if self.store.get_fields(self.test_id, "cancel_requested")["cancel_requested"]:
            self.cancel.set()

    def should_stop(self) -> bool:
        """Polled by running clones and tools several times a second. A cancel request is looked
        up in Redis at most once a second (besides the lease heartbeat), so a cancel stops the
        running tools within about a second whatever LEASE_SECONDS is."""
        now = time.monotonic()
        if not self.cancel.is_set() and now >= self._next_cancel_poll:
            self._next_cancel_poll = now + CANCEL_POLL_SECONDS
            try:
                if self.store.get_fields(self.test_id, "cancel_requested")["cancel_requested"]:
                    self.cancel.set()
            except redis.RedisError:
                pass  # the heartbeat keeps trying; a Redis outage must not stop the scan by itself
        return (self.cancel.is_set() or (self.lease is not None and self.lease.lost.is_set())
                or (self.deadline is not None and time.monotonic() > self.deadline))

    def check_stop(self) -> None:
        if self.cancel.is_set() or self.store.get_fields(self.test_id, "cancel_requested")["cancel_requested"]:
            self.cancel.set()
            raise Stop(CANCELLED, "cancelled", "the scan was cancelled")
        if self.lease is not None and self.lease.lost.is_set():
            raise Stop(FAILED, "lease_lost", "the worker lost its lease on the scan")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stop(FAILED, "scan_timeout", "the scan exceeded its runtime ceiling")

    def run(self) -> None:
        restarted = self.record.status == RUNNING
        attempt = int(self.record.attempt or 0) + 1
        if self.record.cancel_requested:
            self.cancel.set()
        moved = self.store.transition(self.test_id, RUNNING, allowed_from=[QUEUED, RUNNING],
                                      started_at=self.started_at, attempt=attempt, phases=[],
                                      errors=[], warnings=[], heartbeat_at=utcnow_iso(),
                                      worker=self.delivery.get("hostname"), worker_pid=os.getpid())
        if not moved.ok:
            log.info("scan %s is %s; not starting", self.test_id, moved.previous)
            return
        metrics.SCANS_STARTED.labels(profile=metrics.profile_label(self.record.profile)).inc()
        if restarted:
            self.emitter.phase("restarted", f"the previous attempt stopped without finishing; "
                                            f"starting again cleanly (attempt {attempt})", attempt=attempt)
        else:
            self.emitter.phase("started", "scan started")
        self.bundle = Bundle(self.settings.artifact_root, self.test_id, self.token)
        status, code, message = SUCCEEDED, None, None
        try:
            if attempt > self.settings.max_attempts:
                raise Stop(FAILED, "attempts_exhausted",
                           f"the scan was started {attempt - 1} times and never finished; giving up")
            self.workspace.mkdir(parents=True, exist_ok=True)
            self._run_phases()
            if self.tools is not None and self.tools.errors:
                status, code = FAILED, "tool_error"
                message = "a scanner did not complete: " + ", ".join(sorted(self.tools.errors))
        except Stop as exc:
            status, code, message = exc.status, exc.code, exc.message
        except SourceError as exc:
            status, code, message = FAILED, exc.code, exc.message
        except manifests.ManifestInvalid as exc:
            status, code, message = FAILED, "manifest_invalid", str(exc)
        except redis.RedisError as exc:
            # The state store is unreachable: nothing can be recorded now. Leave the scan RUNNING;
            # once its lease lapses the sweeper hands it to a worker again.
            log.warning("scan %s interrupted: Redis unavailable (%s)", self.test_id, exc.__class__.__name__)
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.bundle.discard()
            return
        except SoftTimeLimitExceeded:
            self.cancel.set()
            status, code, message = FAILED, "scan_timeout", "the scan exceeded its time limit"
        except OSError as exc:
            if not storage_full(exc):
                log.exception("scan %s failed unexpectedly", self.test_id)
                status, code, message = FAILED, "internal_error", "the scan failed unexpectedly"
            else:
                log.error("scan %s: out of disk space (%s)", self.test_id, exc.strerror)
                status, code, message = FAILED, STORAGE_FULL, "the worker's disk is full; the scan was stopped"
        except Exception:
            log.exception("scan %s failed unexpectedly", self.test_id)
            status, code, message = FAILED, "internal_error", "the scan failed unexpectedly"
        finally:
            shutil.rmtree(self.workspace, ignore_errors=True)
        self._finish(status, code, message)

    # -- phases ------------------------------------------------------------------------------
    def _phase_start(self, name: str, message: str, **fields: Any) -> dict[str, Any]:
        self.check_stop()
        phase = {"name": name, "status": "running", "started_at": utcnow_iso(), "finished_at": None,
                 "duration_s": None, "_t0": time.monotonic()}
        self.phases.append(phase)
        self.store.update(self.test_id, phases=self._public_phases())
        self.emitter.phase(name, message, **fields)
        return phase

    def _phase_end(self, phase: dict[str, Any], status: str = "succeeded") -> None:
        phase["status"] = status
        phase["finished_at"] = utcnow_iso()
        phase["duration_s"] = round(time.monotonic() - phase["_t0"], 3)
        metrics.PHASE_DURATION.labels(phase=phase["name"], status=status).observe(phase["duration_s"])
        self.store.update(self.test_id, phases=self._public_phases())

    def _public_phases(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if not k.startswith("_")} for p in self.phases]

    def _run_phases(self) -> None:
        src = self.workspace / "src"
        self._fetch_phase(src)
        selection = self._manifest_phase(src)
        self._scan_phase(selection, src)

    def _fetch_phase(self, src: Path) -> None:
        """The source into ``src``: cloned (in its own sandbox), extracted or copied."""
        rec = self.record
        phase = self._phase_start("clone", "fetching source", source_type=rec.source_type)
        sandbox = Sandbox(self.settings)
        try:
            sandbox.check()  # fail closed: no tool, no clone runs unconfined
        except SandboxUnavailable as exc:
            log.critical("refusing scans: %s", exc)
            raise Stop(FAILED, "sandbox_unavailable", f"the worker cannot sandbox scanners: {exc}") from exc
        try:
            self.source = fetch_source(self.settings, rec, src, self.redactor, should_stop=self.should_stop,
                                       full_history=self._wants_history())
        except SourceError as exc:
            if exc.code == "cancelled" or self.should_stop():
                self.check_stop()  # cancelled or out of time: report that, not a source failure
            raise
        self.check_stop()
        if self.source.written_by_worker:
            sandbox.share(src)  # the tools' user must be able to read it
        self.warnings.extend(self.source.warnings)
        if self.source.commit:
            self.checkout = git.GitCheckout(commit=self.source.commit, branch=self.source.branch)
        self.store.update(self.test_id, resolved_commit=self.source.commit, source_hash=self.source.hash)
        self._phase_end(phase)
        if self.checkout is not None:
            self.emitter.phase("clone", f"checked out {self.checkout.commit[:12]}", commit=self.checkout.commit,
                               branch=self.checkout.branch, hash=self.source.hash)
        else:
            self.emitter.phase("clone", f"{rec.source_type} source ready", hash=self.source.hash)

    def _manifest_phase(self, src: Path) -> Selection:
        """The manifest resolved (and its signature checked), kept in the bundle byte for byte, and
        the scanners it selects."""
        assert self.bundle is not None
        phase = self._phase_start("manifest", "resolving manifest")
        self.manifest = resolve_manifest(self.record, self.settings, src, known_tools=set(self.engine.scanners))
        # Exactly the bytes the scan used (and was verified against), and the signature that came with them.
        self.bundle.write_bytes("manifest.json", self.manifest.data or self.manifest.text.encode())
        if self.manifest.signature is not None:
            self.bundle.write_bytes("manifest.sig", self.manifest.signature)
        if self.manifest.ceiling_minutes:
            # The ceiling counts from the start of the scan, the fetch of the source included.
            self.deadline = self.started_mono + self.manifest.ceiling_minutes * CEILING_UNIT_SECONDS
            self.check_stop()
        selection = select_tools(self.manifest, self.engine.scanners)
        self.store.update(self.test_id, manifest_digest=self.manifest.digest,
                          manifest_metadata=self.manifest.info)
        self.bundle.write_json("manifest-info.json", self.manifest.info)
        self._phase_end(phase)
        self.emitter.phase("manifest", "manifest resolved", hash=self.manifest.digest,
                           source=self.manifest.source, signature_verified=self.manifest.signature_verified)
        return selection

    def _scan_phase(self, selection: Selection, src: Path) -> None:
        """The selected scanners, each in its sandbox, and the warnings they give."""
        assert self.bundle is not None and self.manifest is not None
        phase = self._phase_start("scan", "running scanners")
        for tool in self.manifest.unsupported:
            self.warnings.append({"code": "tool_unsupported", "message": f"tool {tool!r} is not supported"})
        self.tools = run_tools(selection, src, self.workspace / "tools", self.bundle, self.emitter,
                               self.settings, self.should_stop)
        self.check_stop()
        for tool, reason in self.tools.skipped.items():
            self.warnings.append({"code": "tool_skipped", "message": f"{tool}: {reason}"})
        # Tools finish in any order: their warnings are sorted so a rescan says the same.
        self.warnings.extend(sorted(self.tools.warnings, key=lambda w: (w["code"], w["message"])))
        self._phase_end(phase, "failed" if self.tools.errors else "succeeded")

    def _wants_history(self) -> bool:
        """Whether a selected scanner reads earlier commits, so the clone must not be shallow.
        Built-in profiles and inline manifests are known before the clone. A manifest from a path or
        URI is read only in the manifest phase (never twice): the built-in profile of that name
        decides; when the profile cannot be resolved yet, the manifest phase reports why."""
        tools: tuple[str, ...] | list[str]
        if self.record.manifest_path or self.record.manifest_uri:
            base = builtin(self.record.profile)
            tools = base.tools if base is not None else ()
        else:
            try:
                tools = resolve_manifest(self.record, self.settings).tools
            except manifests.ManifestInvalid:
                return False
        return any(s.needs_history for s in (self.engine.scanners.get(t) for t in tools) if s is not None)

    # -- finishing ---------------------------------------------------------------------------
    def _summary(self) -> dict[str, Any]:
        if self.tools is None:
            return {"total": 0, "by_severity": {}, "by_tool": {}, "executed_tools": [], "skipped_tools": {}}
        # total and by_severity count logical findings (one per weakness and place); by_tool, reports
        self.logical = group(self.tools.findings)
        return {**self.tools.summary(), **counted(self.logical)}

    def _conclude(self, status: ScanStatus, summary: dict[str, Any]) -> Conclusion | None:
        """Record the findings of a scan that ran its tools and compare them with its baseline
        (workers/findings.py); the summary gains ``baseline`` and ``diff``."""
        if self.logical is None or status == CANCELLED:
            return None
        rec, source = self.record, self.source
        conclusion = self.engine.findings.conclude(ScanContext(
            test_id=self.test_id, workspace_id=rec.workspace_id, component_id=rec.component_id, status=status,
            created_at=rec.created_at, findings=self.logical, baseline=rec.baseline,
            baseline_branch=rec.baseline_branch, branch=self.checkout.branch if self.checkout else None,
            commit=self.checkout.commit if self.checkout else None,
            default_branch=source.default_branch if source else None))
        summary.update(conclusion.summary_fields())
        self.warnings.extend(conclusion.warnings)
        return conclusion

    def _finish(self, status: ScanStatus, code: str | None, message: str | None) -> None:
        assert self.bundle is not None
        if code == "lease_lost" or (self.lease is not None and not self.lease.held()):
            # Another attempt owns the scan now (or will, via the sweeper): finishing here would
            # complete it twice.
            log.warning("scan %s: lease lost; leaving the scan to the attempt that holds it", self.test_id)
            self.bundle.discard()
            return
        for phase in self.phases:
            if phase["status"] == "running":
                self._phase_end(phase, "cancelled" if status == CANCELLED else "failed")
        if code and message:
            message = self.redactor.text(message)
            self.errors.append({"code": code, "message": message})
            self.emitter.error(code, message)
        signer: Signer | None = None
        try:
            signer = self.engine.signer()
        except SigningKeyError as exc:
            # Fail closed: a bundle that cannot be attested is not a successful scan.
            log.error("scan %s: signing key unavailable: %s", self.test_id, exc.message)
            if status == SUCCEEDED:
                status = FAILED
            sign_msg = f"the bundle cannot be signed: {exc.message} ({exc.code})"
            self.errors.append({"code": "signing_failed", "message": sign_msg})
            self.emitter.error("signing_failed", sign_msg)
        summary = self._summary()
        self.conclusion = self._conclude(status, summary)
        policy = (evaluate(self.manifest, summary, self.conclusion) if self.manifest and status == SUCCEEDED
                  else None)
        completed_at = utcnow_iso()
        try:
            event_id, payload, artifacts = self._write_bundle(status, summary, policy, completed_at, signer)
        except OSError as exc:
            if not storage_full(exc):
                raise
            # Nothing half-written stays visible: the staging folder goes, and the scan still ends,
            # with its final event, only without a bundle.
            log.error("scan %s: the bundle could not be written: %s", self.test_id, exc.strerror)
            self.bundle.discard()
            status, policy, artifacts = FAILED, None, {}
            if self.conclusion is not None:
                self.engine.findings.record_failed(self.conclusion)
            full = "the artifact folder is full: the bundle could not be written"
            self.errors.append({"code": STORAGE_FULL, "message": full})
            self.emitter.error(STORAGE_FULL, full)
            event_id, payload = self._final_event(status, summary, None)
        done = self.store.transition(
            self.test_id, status, allowed_from=[RUNNING],
            event=StreamAppend(stream_key(self.test_id), event_id, payload, self.settings.stream_maxlen),
            completed_at=completed_at, summary=summary, policy=policy, artifacts=artifacts,
            errors=self.errors, warnings=self.warnings, phases=self._public_phases())
        if not done.ok:
            log.warning("scan %s could not be finished: it is %s", self.test_id, done.previous)
        self.engine.events.expire(self.test_id)
        if done.ok:
            profile = metrics.profile_label(self.record.profile)
            metrics.SCANS_FINISHED.labels(status=status, profile=profile).inc()
            metrics.SCAN_DURATION.labels(status=status, profile=profile).observe(time.monotonic() - self.started_mono)
        log.info("scan %s finished %s", self.test_id, status)

    def _final_event(self, status: ScanStatus, summary: dict[str, Any],
                     policy: dict[str, Any] | None) -> tuple[str, str]:
        """The id and the encoded payload of the scan's last event, ``scan_complete``."""
        digest = self.manifest.digest if self.manifest else self.record.manifest_digest
        bundle_ref = {"test_id": self.test_id, "artifacts_url": f"/v1/security-scans/{self.test_id}/artifacts"}
        event_fields = {"status": status, "manifest_digest": digest, "bundle": bundle_ref, "summary": summary}
        if policy is not None:
            event_fields["policy"] = {"passed": policy["passed"]}
        return self.engine.events.next_id(self.test_id), encode_event("scan_complete",
                                                                      self.redactor.value(event_fields))

    def _write_bundle(self, status: ScanStatus, summary: dict[str, Any], policy: dict[str, Any] | None,
                      completed_at: str, signer: Signer | None) -> tuple[str, str, dict[str, str]]:
        """Every bundle file, the attestation last, then the bundle moved into place. Returns the
        final event (it is part of the bundle's stream) and the artifact listing."""
        assert self.bundle is not None
        if policy is not None:
            self.bundle.write_json("policy-result.json", policy)
        if self.conclusion is not None:
            self.conclusion.write(self.bundle)  # baselineState in the SARIF files; reports/findings/diff.json
        if self.tools is not None:
            self.bundle.write_json("summary.json", summary)
        event_id, payload = self._final_event(status, summary, policy)
        history = self.engine.events.all(self.test_id) + [{"id": event_id, **json.loads(payload)}]
        self.bundle.write_bytes("logs/stream.jsonl",
                                "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in history).encode())
        self.bundle.write_bytes("logs/runner.log", "".join(_log_line(e) for e in history).encode())
        scan_json = self._scan_json(status, completed_at, summary, policy)
        self.bundle.write_json("scan.json", scan_json)
        if signer is not None:
            # Last: every other file, the final stream included, is now in place and is covered.
            attestation.attest(self.bundle.staging, self._predicate(scan_json, signer), signer)
        artifacts = {_artifact_key(p): p for p in self.bundle.files()}
        self.bundle.publish()
        return event_id, payload, artifacts

    def _scan_json(self, status: ScanStatus, completed_at: str, summary: dict[str, Any],
                   policy: dict[str, Any] | None) -> dict[str, Any]:
        rec = self.record
        assert self.bundle is not None
        document: dict[str, Any] = self.redactor.value({
            "test_id": self.test_id,
            "workspace_id": rec.workspace_id,
            "component_id": rec.component_id,
            "assessment_id": rec.assessment_id,
            "requested_by": rec.requested_by,
            "status": status,
            "source": {
                "source_type": rec.source_type,
                "git_url": rec.git_url,
                "branch": self.checkout.branch if self.checkout else rec.branch,
                "commit_requested": rec.commit,
                "resolved_commit": self.checkout.commit if self.checkout else None,
                "directory_path": rec.directory_path,
                "archive_path": rec.archive_path,
                **(rec.source_fields or {}),  # a kind's fields that the record has no field of its own for
                "hash": self.source.hash if self.source else None,
                **({"detail": self.source.detail} if self.source and self.source.detail else {}),
            },
            "profile": rec.profile,
            "manifest_digest": self.manifest.digest if self.manifest else rec.manifest_digest,
            "timings": {"created_at": rec.created_at, "started_at": self.started_at,
                        "completed_at": completed_at, "phases": self._public_phases()},
            "summary": summary,
            "policy": policy,
            "errors": self.errors,
            "warnings": self.warnings,
            "tools": self.tools.versions if self.tools else {},
            "artifacts": {p: {"sha256": d} for p, d in self.bundle.digests().items()},
        })
        return document

    def _predicate(self, scan_json: dict[str, Any], signer: Signer) -> dict[str, Any]:
        """What the attestation says about the scan (the files themselves are its subjects)."""
        manifest = self.manifest
        return {
            "scan": {k: scan_json.get(k) for k in ("test_id", "workspace_id", "component_id", "assessment_id",
                                                   "requested_by", "status")},
            "source": scan_json["source"],
            "manifest": {
                "digest": scan_json.get("manifest_digest"),
                "source": manifest.source if manifest else None,
                "signature_verified": bool(manifest and manifest.signature_verified),
            },
            "profile": {
                "requested": self.record.profile,
                "resolved": manifest.profile_resolved if manifest else None,
            },
            "tools": scan_json.get("tools", {}),
            "timings": scan_json["timings"],
            "result": {"summary": scan_json.get("summary"),
                       "policy_passed": (scan_json.get("policy") or {}).get("passed"),
                       "errors": scan_json.get("errors", [])},
            # the baseline compared with (and its bundle's digest), the diff, the triage applied
            "findings": self.conclusion.predicate() if self.conclusion is not None else None,
            "builder": {"id": "certus-assurance", "signer_key_sha256": signer.key_id},
        }


def _artifact_key(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    for suffix in (".sarif.json", ".json", ".jsonl", ".log"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    prefix = path.split("/", 1)[0] if "/" in path else ""
    if prefix == "reports":
        prefix = path.split("/")[1]
    return f"{prefix}.{name}" if prefix else name


def _log_line(event: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(event.get("timestamp", 0))))
    kind = event.get("type")
    if kind == "log":
        text = f"{event.get('tool')} {event.get('stream')}: {event.get('line')}"
    elif kind == "tool_start":
        text = f"{event.get('tool')} started: {' '.join(event.get('command') or [])}"
    elif kind == "tool_complete":
        text = (f"{event.get('tool')} exited {event.get('exit_code')} with {event.get('findings')} findings "
                f"in {event.get('duration_s')} s")
    elif kind == "scan_complete":
        text = f"scan {event.get('status')}"
    elif kind == "error":
        text = f"{event.get('code')}: {event.get('message')}"
    else:
        text = f"{event.get('phase', '')}: {event.get('message', '')}"
    return f"{stamp}Z [{kind}] {text}\n"
