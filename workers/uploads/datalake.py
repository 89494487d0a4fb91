"""Raw -> golden promotion of a permitted bundle.

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
from pathlib import Path
from typing import Any

from workers.bundle import confine
from workers.uploads.errors import PermanentUploadError
from workers.uploads.objectstore import ObjectStore

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
