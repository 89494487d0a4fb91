"""The upload engine behind ``uploads.verify`` and ``uploads.publish``.

verify: build the Trust request for the finished bundle, ask Trust, record permit or denial.
publish: for one destination (``workers.uploads.destinations``), check the bundle still matches the
permitted digests, publish, and when every destination is done mark the upload ``uploaded``.

Upload results never change the signed bundle: ``scan.json`` stays as the attestation covers it, and
the upload's outcome is written to ``{artifact_root}/{test_id}.upload.json`` (plus the scan record,
the ``upload`` events, and the permit stored beside the promoted objects).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import redis

from tasks.clock import utcnow_iso
from tasks.events import EventLog
from tasks.logconfig import test_id_var
from tasks.settings import Settings
from tasks.store import ScanStore
from tasks.uploads import DENIED, PENDING, PERMITTED, UPLOAD_FAILED, UPLOADED, UploadStore
from workers.bundle import sha256_file
from workers.uploads import destinations as registered_destinations
from workers.uploads import signing
from workers.uploads.base import Destination, PublishJob
from workers.uploads.errors import PermanentUploadError, TransientUploadError
from workers.uploads.trust import EmbeddedTrustClient, RemoteTrustClient, TrustClient, build_request
from workers.uploads.trust_policy import RedisReplayGuard, TrustPolicy

log = logging.getLogger(__name__)
# Answers that mean Trust was not reached, not that it refused: retried before the upload is denied.
TRUST_OUTAGE = ("trust_unreachable", "trust_timeout", "trust_unavailable")


class UploadEngine:
    def __init__(self, settings: Settings, client: redis.Redis, *, trust: TrustClient | None = None,
                 destinations: Mapping[str, Destination] | None = None,
                 signer: signing.Signer | None = None) -> None:
        self.settings = settings
        self.redis = client
        self.store = ScanStore(client, retention_seconds=settings.retention_seconds)
        self.events = EventLog(client, maxlen=settings.stream_maxlen, retention_seconds=settings.retention_seconds)
        self.uploads = UploadStore(self.store, self.events)
        self._trust, self._destinations, self._signer = trust, destinations, signer

    # -- ports, built on first use so a worker boots without touching any of them ---------------
    @cached_property
    def signer(self) -> signing.Signer:
        return self._signer or signing.load_service_signer(self.settings)

    @cached_property
    def trust(self) -> TrustClient:
        if self._trust is not None:
            return self._trust
        s = self.settings
        if s.trust_base_url:
            return RemoteTrustClient(s.trust_base_url, timeout=s.trust_timeout, ca_bundle=s.trust_ca_bundle)
        proof_key = signing.PemSigner(signing.load_or_create_pem_key(Path(s.trust_key_dir) / "trust.pem"))
        policy = TrustPolicy(
            signer_keys={s.upload_signer: signing.load_public_key(self.signer.public_key_pem)},
            allowed_signers={"basic": s.trust_signers_basic, "verified": s.trust_signers_verified},
            proof_signer=proof_key, replay=RedisReplayGuard(self.redis), max_clock_skew=s.trust_max_clock_skew,
            replay_ttl=s.retention_seconds)
        return EmbeddedTrustClient(policy)

    @cached_property
    def destinations(self) -> dict[str, Destination]:
        """Every destination, by name (``workers.uploads.destinations``)."""
        if self._destinations is not None:
            return dict(self._destinations)
        return registered_destinations.build(self.settings)

    def storage_destinations(self, test_id: str) -> dict[str, str]:
        """The Trust request's ``storage_destinations``: each destination's location, under its
        Trust name."""
        return {d.trust_name: d.location(test_id) for d in self.destinations.values()}

    def bundle_root(self, test_id: str) -> Path:
        return Path(self.settings.artifact_root) / test_id

    # -- verify ----------------------------------------------------------------------------------
    def verify_upload(self, test_id: str, request_id: str, last_attempt: bool = True) -> list[str]:
        """Ask Trust and record its answer. A Trust that cannot be reached (or a state store that
        cannot be) is a ``TransientUploadError`` (or a ``redis.RedisError``) for the task to retry,
        unless this is the ``last_attempt``: then the upload is denied (fail closed)."""
        token = test_id_var.set(test_id)
        try:
            return self._verify(test_id, request_id, last_attempt)
        except (TransientUploadError, redis.RedisError):
            raise
        except Exception:
            log.exception("upload verification of %s failed unexpectedly", test_id)
            return self._deny(test_id, request_id, "internal_error", "verification failed unexpectedly")
        finally:
            test_id_var.reset(token)

    def _verify(self, test_id: str, request_id: str, last_attempt: bool = True) -> list[str]:
        record = self.store.get(test_id)
        if record is None or record.upload_request_id != request_id:
            log.info("upload %s of %s is no longer current; nothing to do", request_id, test_id)
            return []
        if record.upload_status == PERMITTED:
            return list(self.destinations)  # a redelivery after the permit: the publish tasks are idempotent
        if record.upload_status != PENDING:
            return []
        request = record.upload_request or {}
        tier = request.get("tier") or "verified"
        signer_name = request.get("signer") or self.settings.upload_signer
        root = self.bundle_root(test_id)
        try:
            if not (root / "scan.json").is_file():
                raise PermanentUploadError("bundle_missing", "the scan's bundle is not in the artifact store")
            if not (root / signing.ATTESTATION_PATH).is_file():
                raise PermanentUploadError("attestation_missing", "the bundle has no attestation to verify")
            trust_request = build_request(root=root, record=record, tier=tier, signer_name=signer_name,
                                          signer=self.signer, destinations=self.storage_destinations(test_id))
            decision = self.trust.verify_and_permit(trust_request)
        except PermanentUploadError as exc:
            return self._deny(test_id, request_id, exc.code, exc.message)
        except redis.RedisError:
            raise
        except Exception:
            log.exception("upload verification of %s failed", test_id)
            return self._deny(test_id, request_id, "trust_error", "verification failed unexpectedly")
        if not decision.permitted and decision.reason in TRUST_OUTAGE and not last_attempt:
            # Not a decision: Trust was not there to make one. Nothing is published meanwhile.
            raise TransientUploadError(f"{decision.reason}: {decision.detail}")
        if not decision.permitted:
            return self._deny(test_id, request_id, decision.reason or "denied", decision.detail or "")
        permit = {"upload_permission_id": decision.permission_id, "tier": tier, "signer": signer_name,
                  "permitted_at": utcnow_iso(),
                  "artifacts": {a["name"]: a["hash"].split(":", 1)[1] for a in trust_request["artifacts"]}}
        moved = self.uploads.move(test_id, PERMITTED, allowed_from=[PENDING], request_id=request_id,
                                  upload_permission_id=decision.permission_id,
                                  verification_proof=decision.proof, upload_permit=permit)
        if not moved.ok:
            return []
        self.uploads.emit(test_id, PERMITTED, f"Certus-Trust permitted the upload ({tier})",
                          upload_permission_id=decision.permission_id)
        self._write_record(test_id)
        return list(self.destinations)

    def _deny(self, test_id: str, request_id: str, reason: str, detail: str) -> list[str]:
        text = f"{reason}: {detail}" if detail else reason
        if self.uploads.move(test_id, DENIED, allowed_from=[PENDING], request_id=request_id,
                             upload_reason=text).ok:
            self.uploads.emit(test_id, DENIED, text, reason=reason)
            self._write_record(test_id)
        log.info("upload of %s denied: %s", test_id, text)
        return []

    # -- publish ---------------------------------------------------------------------------------
    def publish_upload(self, test_id: str, request_id: str, destination: str) -> None:
        token = test_id_var.set(test_id)
        try:
            self._publish(test_id, request_id, destination)
        except PermanentUploadError as exc:
            self.fail_upload(test_id, request_id, destination, f"{destination}: {exc.code}: {exc.message}")
        except (TransientUploadError, redis.RedisError):
            raise  # the task retries; every publish step is safe to repeat
        except Exception:
            # Never leave an upload hanging in `permitted`: an unexpected error ends it.
            log.exception("publishing %s to %s failed unexpectedly", test_id, destination)
            self.fail_upload(test_id, request_id, destination, f"{destination}: internal_error: publishing failed "
                                                               "unexpectedly")
        finally:
            test_id_var.reset(token)

    def _publish(self, test_id: str, request_id: str, destination: str) -> None:
        record = self.store.get(test_id)
        if (record is None or record.upload_request_id != request_id
                or record.upload_status != PERMITTED):
            log.info("publish %s of %s is not current; nothing to do", destination, test_id)
            return
        permit = record.upload_permit or {}
        digests: dict[str, str] = permit["artifacts"]
        root = self.bundle_root(test_id)
        for name, digest in digests.items():
            path = root / name
            if not path.is_file() or path.is_symlink() or sha256_file(path) != digest:
                raise PermanentUploadError("bundle_changed", f"{name} no longer matches the permitted digest")
        target = self.destinations.get(destination)
        if target is None:
            raise PermanentUploadError("destination_unknown", f"unknown destination {destination!r}")
        result = target.publish(PublishJob(test_id=test_id, root=root, record=record, digests=digests, permit=permit,
                                           signer=lambda: self.signer))
        done = self.uploads.mark_done(test_id, request_id, destination, result)
        final = all(d in done for d in self.destinations)
        moved = self.uploads.move(test_id, UPLOADED if final else PERMITTED, allowed_from=[PERMITTED],
                                  request_id=request_id, remote_artifacts=done)
        if moved.ok:
            self.uploads.emit(test_id, PERMITTED, f"published to {destination}", destination=destination,
                              remote=result)
            if final:
                self.uploads.emit(test_id, UPLOADED, "published to every destination", remote_artifacts=done)
                self._write_record(test_id)

    def note_verify_retry(self, test_id: str, request_id: str, reason: str, countdown: int) -> None:
        if self.uploads.state(test_id).upload_request_id == request_id:
            self.uploads.emit(test_id, PENDING, f"{reason}; asking Certus-Trust again in {countdown} s",
                              retry_in=countdown)
        log.info("verification of %s will be retried in %s s: %s", test_id, countdown, reason)

    def note_retry(self, test_id: str, request_id: str, destination: str, reason: str, countdown: int) -> None:
        if self.uploads.state(test_id).upload_request_id == request_id:
            self.uploads.emit(test_id, PERMITTED, f"{destination}: {reason}; retrying in {countdown} s",
                              destination=destination, retry_in=countdown)
        log.info("publishing %s to %s will be retried in %s s: %s", test_id, destination, countdown, reason)

    def fail_upload(self, test_id: str, request_id: str, destination: str, reason: str) -> None:
        if self.uploads.move(test_id, UPLOAD_FAILED, allowed_from=[PERMITTED], request_id=request_id,
                             upload_reason=reason).ok:
            self.uploads.emit(test_id, UPLOAD_FAILED, reason, destination=destination)
            self._write_record(test_id)
        log.warning("upload of %s failed: %s", test_id, reason)

    def _write_record(self, test_id: str) -> None:
        """``{artifact_root}/{test_id}.upload.json``: the upload's outcome, outside the signed bundle."""
        state = self.uploads.state(test_id)
        target = Path(self.settings.artifact_root) / f"{test_id}.upload.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"test_id": test_id, "updated_at": utcnow_iso(), **state.outcome()}, indent=2,
                                      sort_keys=True) + "\n")
            os.replace(tmp, target)
        except OSError as exc:  # the record in Redis stays the truth
            log.warning("could not write %s: %s", target, exc)
