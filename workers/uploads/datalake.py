"""The ``s3`` publish destination: raw -> golden promotion of a permitted bundle.

1. Stage: every bundle file to ``{raw_bucket}/{raw_prefix}/{test_id}/incoming/{path}`` (skipped when
   an object with the same sha256 is already there, so a re-run adds nothing twice).
2. Check: every staged object is read back and hashed; it must equal the digest the Trust permitted.
3. Promote: server-side copy to ``{golden_bucket}/{golden_prefix}/{test_id}/golden/{path}``. If a
   copy fails, the objects this run copied are removed again before the error is raised.
4. Record: ``permit.json`` and ``verification-proof.json`` beside both prefixes; in golden they are
   written last, so ``{golden_prefix}/{test_id}/permit.json`` marks a complete promotion.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tasks.settings import Settings
from workers.bundle import confine
from workers.uploads.base import Destination, PublishJob
from workers.uploads.errors import PermanentUploadError
from workers.uploads.objectstore import FileObjectStore, ObjectStore, S3ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    raw_bucket: str
    raw_prefix: str
    golden_bucket: str
    golden_prefix: str

    def raw_key(self, test_id: str, name: str) -> str:
        return _join(self.raw_prefix, test_id, "incoming", name)

    def golden_key(self, test_id: str, name: str) -> str:
        return _join(self.golden_prefix, test_id, "golden", name)

    def raw_dir(self, test_id: str) -> str:
        return _join(self.raw_prefix, test_id)

    def golden_dir(self, test_id: str) -> str:
        return _join(self.golden_prefix, test_id)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class DatalakeDestination(Destination):
    """``s3``: the bundle promoted through the data lake's raw and golden prefixes, on the S3
    endpoint at ``S3_ENDPOINT_URL``, or in folders under ``DATALAKE_ROOT`` without one."""

    trust_name = "raw_s3"

    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        self.settings = settings
        self._store = store
        self.layout = Layout(settings.datalake_raw_bucket, settings.datalake_raw_prefix,
                             settings.datalake_golden_bucket, settings.datalake_golden_prefix)

    @cached_property
    def store(self) -> ObjectStore:
        if self._store is not None:
            return self._store
        s = self.settings
        if s.s3_endpoint_url:
            return S3ObjectStore(endpoint_url=s.s3_endpoint_url, region=s.s3_region, path_style=s.s3_path_style)
        return FileObjectStore(s.datalake_root)

    def location(self, test_id: str) -> str:
        return f"s3://{self.layout.raw_bucket}/{self.layout.raw_dir(test_id)}/incoming/"

    def publish(self, job: PublishJob) -> dict[str, Any]:
        record = job.record
        metadata = {"test_id": job.test_id, "workspace_id": record.workspace_id, "component_id": record.component_id,
                    "assessment_id": record.assessment_id, "manifest_digest": record.manifest_digest or ""}
        permit = {**job.permit, "scan_id": job.test_id, "verification_proof": record.verification_proof}
        return promote(self.store, self.layout, root=job.root, test_id=job.test_id, digests=job.digests,
                       metadata=metadata, permit=permit)


def promote(store: ObjectStore, layout: Layout, *, root: Path, test_id: str, digests: dict[str, str],
            metadata: dict[str, str], permit: dict[str, Any]) -> dict[str, Any]:
    """Stage, check and promote the bundle at ``root``; ``digests`` are the permitted hex sha256s."""
    names = sorted(digests)
    staged = 0
    for name in names:
        key = layout.raw_key(test_id, name)
        head = store.head(layout.raw_bucket, key)
        if head is not None and head.get("sha256") == digests[name]:
            continue
        store.put_file(layout.raw_bucket, key, confine(root, name), digests[name], metadata)
        staged += 1
    for name in names:
        actual = store.content_sha256(layout.raw_bucket, layout.raw_key(test_id, name))
        if actual != digests[name]:
            raise PermanentUploadError("raw_digest_mismatch",
                                       f"staged {name} does not match its signed digest; nothing promoted")
    permit_doc = json.dumps(permit, indent=2, sort_keys=True).encode()
    proof_doc = json.dumps(permit.get("verification_proof"), indent=2, sort_keys=True).encode()
    store.put_bytes(layout.raw_bucket, _join(layout.raw_dir(test_id), "permit.json"), permit_doc, metadata)
    store.put_bytes(layout.raw_bucket, _join(layout.raw_dir(test_id), "verification-proof.json"), proof_doc, metadata)

    copied: list[str] = []
    try:
        for name in names:
            key = layout.golden_key(test_id, name)
            head = store.head(layout.golden_bucket, key)
            if head is not None and head.get("sha256") == digests[name]:
                continue
            store.copy(layout.raw_bucket, layout.raw_key(test_id, name), layout.golden_bucket, key)
            copied.append(key)
        store.put_bytes(layout.golden_bucket, _join(layout.golden_dir(test_id), "verification-proof.json"),
                        proof_doc, metadata)
        store.put_bytes(layout.golden_bucket, _join(layout.golden_dir(test_id), "permit.json"), permit_doc, metadata)
    except Exception:
        for key in copied:
            try:
                store.delete(layout.golden_bucket, key)
            except Exception as exc:  # noqa: BLE001 - the promotion error matters more
                log.warning("could not roll back %s: %s", key, exc)
        raise
    return {
        "raw": store.url(layout.raw_bucket, layout.raw_dir(test_id) + "/incoming/"),
        "golden": store.url(layout.golden_bucket, layout.golden_dir(test_id) + "/golden/"),
        "permit": store.url(layout.golden_bucket, _join(layout.golden_dir(test_id), "permit.json")),
        "files": len(names),
        "staged_now": staged,
        "promoted_now": len(copied),
    }
