"""The ``oci`` publish destination: the bundle as an OCI 1.1 artifact, signed the way stock cosign
verifies.

* Artifact: an image manifest with ``artifactType`` ``application/vnd.certus-assurance.scan-bundle.v1``,
  the empty config, and ONE LAYER PER BUNDLE FILE (title annotation = the bundle path), so any single
  report can be pulled by digest without unpacking a tar. Tag: the test_id.
* Signature: cosign's legacy tag ``sha256-<hex>.sig`` holding a manifest whose layer is the
  simple-signing payload and whose ``dev.cosignproject.cosign/signature`` annotation is the base64
  ECDSA signature over it.
* Attestation: tag ``sha256-<hex>.att`` whose layer is a DSSE envelope over an in-toto statement
  with the artifact's digest as subject and the bundle attestation's statement in the predicate.
* Referrers: both manifests carry ``subject``; a registry without the referrers API (no
  ``OCI-Subject`` answer) gets the fallback index at tag ``sha256-<hex>`` maintained for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cached_property
from typing import Any

from tasks.settings import Settings
from workers.uploads import signing
from workers.uploads.base import Destination, PublishJob
from workers.uploads.registry import OCI_INDEX, OCI_MANIFEST, OciLayout, OciTarget, RegistryClient, sha256_digest

ARTIFACT_TYPE = "application/vnd.certus-assurance.scan-bundle.v1"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


def _bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _media_type(name: str) -> str:
    return "application/json" if name.endswith(".json") else "application/octet-stream"


def _desc(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def _cosign_manifest(target: OciTarget, layer: bytes, layer_type: str, annotations: dict[str, str],
                     subject: dict[str, Any]) -> bytes:
    layer_digest = target.put_blob(layer)
    config = _bytes({"architecture": "", "os": "", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [layer_digest]}})
    config_digest = target.put_blob(config)
    return _bytes({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": layer_type,
        "config": _desc(IMAGE_CONFIG, config_digest, len(config)),
        "layers": [_desc(layer_type, layer_digest, len(layer), annotations=annotations)],
        "subject": subject,
    })


class OciDestination(Destination):
    """``oci``: the bundle as a signed OCI artifact tagged with its test_id, in the registry at
    ``REGISTRY``, or in an OCI image layout under ``OCI_LAYOUT_ROOT`` without one."""

    trust_name = "oci_registry"

    def __init__(self, settings: Settings, target: OciTarget | None = None) -> None:
        self.settings = settings
        self._target = target

    @cached_property
    def target(self) -> OciTarget:
        if self._target is not None:
            return self._target
        s = self.settings
        if s.registry:
            return RegistryClient(s.registry, s.registry_repository, plain_http=s.registry_plain_http,
                                  username=s.registry_username, password=s.registry_password,
                                  ca_bundle=s.registry_ca_bundle, token_realms=s.registry_token_realms)
        return OciLayout(s.oci_layout_root, s.registry_repository)

    def location(self, test_id: str) -> str:
        s = self.settings
        if s.registry:
            return f"{s.registry}/{s.registry_repository}:{test_id}"
        return f"oci-layout:{s.oci_layout_root}/{s.registry_repository}:{test_id}"

    def publish(self, job: PublishJob) -> dict[str, Any]:
        record = job.record
        files = {name: (job.root / name).read_bytes() for name in job.digests}
        annotations = {"dev.certus-assurance.test_id": job.test_id,
                       "dev.certus-assurance.manifest_digest": str(record.manifest_digest or ""),
                       "org.opencontainers.image.revision": str(record.resolved_commit or ""),
                       "org.opencontainers.image.source": str(record.git_url or ""),
                       "org.opencontainers.image.created": str(record.completed_at or "")}
        return push_bundle(self.target, files=files, tag=job.test_id, annotations=annotations, signer=job.signer(),
                           bundle_attestation=files[signing.ATTESTATION_PATH])


def push_bundle(target: OciTarget, *, files: dict[str, bytes], tag: str, annotations: dict[str, str],
                signer: signing.Signer, bundle_attestation: bytes) -> dict[str, Any]:
    """Push, sign and attest; returns where everything went. Re-running leaves the same artifact."""
    layers = []
    for name in sorted(files):
        data = files[name]
        layers.append(_desc(_media_type(name), target.put_blob(data), len(data),
                            annotations={"org.opencontainers.image.title": name}))
    config_digest = target.put_blob(EMPTY_CONFIG)
    manifest = _bytes({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
        "config": _desc(EMPTY_MEDIA_TYPE, config_digest, len(EMPTY_CONFIG), data="e30="),
        "layers": layers, "annotations": annotations,
    })
    pushed = target.put_manifest(tag, manifest, OCI_MANIFEST)
    digest = pushed.digest
    subject = _desc(OCI_MANIFEST, digest, len(manifest), artifactType=ARTIFACT_TYPE)
    hex_digest = digest.split(":", 1)[1]
    sig_tag, att_tag = f"sha256-{hex_digest}.sig", f"sha256-{hex_digest}.att"

    referrers: list[dict[str, Any]] = []
    subject_supported = True
    existing_sig = target.get_manifest(sig_tag)
    if existing_sig is None:
        payload = _bytes({"critical": {"identity": {"docker-reference": target.reference_base},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None})
        signature = base64.b64encode(signer.sign(payload)).decode()
        existing_sig = _cosign_manifest(target, payload, SIMPLESIGNING, {SIG_ANNOTATION: signature}, subject)
        subject_supported &= target.put_manifest(sig_tag, existing_sig, OCI_MANIFEST).subject_supported
    referrers.append(_referrer(existing_sig, SIMPLESIGNING))

    existing_att = target.get_manifest(att_tag)
    if existing_att is None:
        envelope = json.loads(bundle_attestation)
        bundle_stmt = json.loads(base64.b64decode(envelope["payload"]))
        predicate_type = bundle_stmt.get("predicateType") or signing.PREDICATE_TYPE
        stmt = signing.statement({target.reference_base: hex_digest}, predicate_type, {
            "test_id": tag,
            "bundle_attestation": {"sha256": hashlib.sha256(bundle_attestation).hexdigest(),
                                   "subject": bundle_stmt.get("subject"), "predicate": bundle_stmt.get("predicate")},
        })
        dsse = signing.dsse_envelope(signing.encode_statement(stmt), signing.INTOTO_PAYLOAD_TYPE, signer)
        existing_att = _cosign_manifest(target, _bytes(dsse), DSSE_MEDIA_TYPE,
                                        {SIG_ANNOTATION: "", "predicateType": predicate_type}, subject)
        subject_supported &= target.put_manifest(att_tag, existing_att, OCI_MANIFEST).subject_supported
    referrers.append(_referrer(existing_att, DSSE_MEDIA_TYPE))

    fallback_tag = f"sha256-{hex_digest}"
    if not subject_supported:
        _update_fallback(target, fallback_tag, referrers)
    return {"reference": f"{target.reference_base}:{tag}", "digest": digest,
            "reference_by_digest": f"{target.reference_base}@{digest}",
            "signature_tag": sig_tag, "attestation_tag": att_tag,
            "referrers_fallback_tag": None if subject_supported else fallback_tag,
            "layers": len(layers)}


def _referrer(manifest: bytes, artifact_type: str) -> dict[str, Any]:
    return _desc(OCI_MANIFEST, sha256_digest(manifest), len(manifest), artifactType=artifact_type)


def _update_fallback(target: OciTarget, tag: str, referrers: list[dict[str, Any]]) -> None:
    """The referrers tag schema: an image index at ``sha256-<hex>`` listing every referrer."""
    current = target.get_manifest(tag)
    manifests: list[dict[str, Any]] = []
    if current is not None:
        try:
            manifests = list(json.loads(current).get("manifests") or [])
        except ValueError:
            manifests = []
    known = {m.get("digest") for m in manifests}
    added = [r for r in referrers if r["digest"] not in known]
    if not added and current is not None:
        return
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests + added}
    target.put_manifest(tag, _bytes(index), OCI_INDEX)
