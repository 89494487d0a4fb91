"""Where OCI content goes: a registry over the OCI distribution API, or an OCI image layout folder.

Both offer the same small interface (``OciTarget``). A registry is spoken to with
``workers.oci_client`` (the client manifest pulls use too): monolithic blob uploads (POST then
PUT ?digest=), manifests by tag, Basic auth and Bearer tokens from the realm a 401 names. The
credentials belong to the configured registry: the Authorization header goes only to its own
origin, a token realm receives them only as ``workers.oci_credentials.realm_refusal`` allows (the
registry's own host and port or a listed realm; plain HTTP only for a plain-HTTP registry and a
realm on its host), and no redirect or upload location leads from https to plain http.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import requests

from workers import oci_client
from workers.bundle import confine
from workers.oci_client import OCI_INDEX, OCI_MANIFEST, PutResult, RegistryError, sha256_digest
from workers.uploads.errors import PermanentUploadError, TransientUploadError

__all__ = ["OCI_INDEX", "OCI_MANIFEST", "OciLayout", "OciTarget", "PutResult", "RegistryClient", "sha256_digest"]

_CODES = {
    oci_client.AUTH_REQUIRED: "registry_auth_required",
    oci_client.AUTH_FAILED: "registry_auth_failed",
    oci_client.AUTH_UNSUPPORTED: "registry_auth_unsupported",
    oci_client.REALM_UNUSABLE: "registry_auth_unsupported",
    oci_client.REALM_NOT_ALLOWED: "registry_token_realm_not_allowed",
    oci_client.DIGEST_MISMATCH: "registry_digest_mismatch",
}


class OciTarget(Protocol):
    @property
    def reference_base(self) -> str: ...
    def put_blob(self, data: bytes) -> str: ...
    def put_manifest(self, ref: str, body: bytes, media_type: str) -> PutResult: ...
    def get_manifest(self, ref: str) -> bytes | None: ...


def upload_error(exc: RegistryError) -> PermanentUploadError | TransientUploadError:
    """What a publish does about a registry failure: retry it later, or end the upload."""
    if exc.reason in (oci_client.UNREACHABLE, oci_client.TLS):
        return TransientUploadError(f"registry request failed: {exc.message}")
    if exc.reason == oci_client.STATUS and exc.status is not None:
        if exc.status == 429 or exc.status >= 500:
            return TransientUploadError(f"registry answered HTTP {exc.status}")
        if exc.status in (401, 403):
            return PermanentUploadError("registry_auth_failed",
                                        f"the registry refused the credentials (HTTP {exc.status})")
    if exc.reason == oci_client.AUTH_REQUIRED:
        return PermanentUploadError("registry_auth_required", "the registry needs credentials; none are set")
    message = exc.message
    if exc.reason == oci_client.REALM_NOT_ALLOWED:
        message += " (CERTUS_ASSURANCE_REGISTRY_TOKEN_REALMS)"
    return PermanentUploadError(_CODES.get(exc.reason, "registry_refused"), message)


class RegistryClient:
    """The configured registry as an ``OciTarget``; ``username`` and ``password`` are its own."""

    def __init__(self, registry: str, repository: str, *, plain_http: bool = False, username: str = "",
                 password: str = "", ca_bundle: str = "", timeout: float = 60,
                 session: requests.Session | None = None, token_realms: tuple[str, ...] = ()) -> None:
        if session is None:
            session = requests.Session()
            session.verify = ca_bundle or True
        self.client = oci_client.DistributionClient(
            registry, repository, session=session, plain_http=plain_http,
            credentials=(username, password) if username else None, token_realms=token_realms,
            actions="pull,push", timeout=timeout)

    @property
    def reference_base(self) -> str:
        return self.client.reference_base

    def put_blob(self, data: bytes) -> str:
        with oci_client.errors_as(upload_error):
            return self.client.put_blob(data)

    def put_manifest(self, ref: str, body: bytes, media_type: str) -> PutResult:
        with oci_client.errors_as(upload_error):
            return self.client.put_manifest(ref, body, media_type)

    def get_manifest(self, ref: str) -> bytes | None:
        with oci_client.errors_as(upload_error):
            found = self.client.get_manifest(ref)
        return None if found is None else found[0]


class OciLayout:
    """An OCI image layout folder (``oci-layout``, ``index.json``, ``blobs/sha256/``); tags are
    ``org.opencontainers.image.ref.name`` annotations in ``index.json``."""

    def __init__(self, root: str | Path, repository: str) -> None:
        self.repository = repository
        self.root = confine(Path(root), repository)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            layout.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    @property
    def reference_base(self) -> str:
        return f"oci-layout:{self.root}"

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def put_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self.root / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not path.exists():
            self._write(path, data)
        return digest

    def _index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return,unused-ignore]
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}

    def put_manifest(self, ref: str, body: bytes, media_type: str) -> PutResult:
        digest = self.put_blob(body)
        if not ref.startswith("sha256:"):
            index = self._index()
            entries = [m for m in index["manifests"]
                       if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref]
            desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body),
                                    "annotations": {"org.opencontainers.image.ref.name": ref}}
            artifact_type = json.loads(body).get("artifactType")
            if artifact_type:
                desc["artifactType"] = artifact_type
            index["manifests"] = [*entries, desc]
            self._write(self.root / "index.json", json.dumps(index, indent=2).encode())
        return PutResult(digest, False)

    def get_manifest(self, ref: str) -> bytes | None:
        if not ref.startswith("sha256:"):
            for m in self._index()["manifests"]:
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
                    ref = m["digest"]
                    break
            else:
                return None
        path = self.root / "blobs" / "sha256" / ref.split(":", 1)[1]
        return path.read_bytes() if path.exists() else None
