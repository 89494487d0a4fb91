"""Pulling a manifest out of an OCI artifact or image, over plain HTTP(S) per the OCI distribution spec.

``oci://registry[:port]/repository[:tag|@sha256:<hex>]`` (tag defaults to ``latest``). The manifest
is the layer titled ``manifest.json`` (annotation ``org.opencontainers.image.title``), its signature
the layer titled ``manifest.sig``; an image without titled layers is searched for those two files at
the root of its tar layers. Every blob is checked against its digest. The registry is spoken to with
``workers.oci_client`` (the client bundle pushes use too): a 401 is answered with a bearer token (from
the realm its ``WWW-Authenticate`` names) or basic auth, and no redirect leads from https to http.

MANIFEST_OCI_USERNAME / MANIFEST_OCI_PASSWORD go only to the registries of MANIFEST_OCI_CREDENTIAL_HOSTS
and to token realms ``workers.oci_credentials`` allows for them; every other registry is asked
anonymously, and one that insists on credentials fails with ``manifest_auth_required``. Every
connection (registry, realm, redirects) goes to an address the network policy checked.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tasks.settings import Settings
from workers import oci_client
from workers.oci_client import INDEX_TYPES, DistributionClient, RegistryError, is_digest
from workers.oci_credentials import registry_listed
from workers.pipeline.manifest_sources import ManifestSourceError, checked_session

TITLE = "org.opencontainers.image.title"
MAX_LAYER_BYTES = 64 * 1024 * 1024
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_CODES = {
    oci_client.AUTH_REQUIRED: "manifest_auth_required",
    oci_client.REALM_NOT_ALLOWED: "manifest_token_realm_not_allowed",
    oci_client.DOWNGRADE: "manifest_uri_not_allowed",
    oci_client.TLS: "manifest_tls_error",
    oci_client.TOO_LARGE: "manifest_too_large",
    oci_client.DIGEST_MISMATCH: "manifest_digest_mismatch",
}


@dataclass
class Reference:
    registry: str  # host[:port]
    repository: str
    reference: str  # tag or digest


@dataclass
class Artifact:
    manifest: bytes
    signature: bytes | None
    digest: str  # of the OCI manifest the files came from


def parse_reference(uri: str) -> Reference:
    parts = urlsplit(uri)
    if parts.scheme != "oci" or not parts.netloc or parts.username or parts.password:
        raise ManifestSourceError("manifest_uri_invalid", "expected oci://registry/repository[:tag|@digest]")
    path = parts.path.lstrip("/")
    if "@" in path:
        repo, ref = path.split("@", 1)
        if not is_digest(ref):
            raise ManifestSourceError("manifest_uri_invalid", "an OCI digest must be sha256:<64 hex>")
    else:
        repo, _, ref = path.rpartition(":") if ":" in path else (path, "", "latest")
        if not _TAG.match(ref):
            raise ManifestSourceError("manifest_uri_invalid", "not a valid OCI tag")
    if not _REPO.match(repo):
        raise ManifestSourceError("manifest_uri_invalid", "not a valid OCI repository name")
    return Reference(parts.netloc.lower(), repo, ref)


def source_error(exc: RegistryError) -> ManifestSourceError:
    """A registry failure as the stable ``manifest_*`` code a scan records."""
    message = exc.message
    if exc.reason == oci_client.STATUS:
        message = f"the registry answered HTTP {exc.status}"  # its body is the registry's to write, not ours
    elif exc.reason == oci_client.AUTH_REQUIRED:
        message += " (CERTUS_ASSURANCE_MANIFEST_OCI_CREDENTIAL_HOSTS)"
    elif exc.reason == oci_client.REALM_NOT_ALLOWED:
        message += " (CERTUS_ASSURANCE_MANIFEST_OCI_TOKEN_REALMS)"
    return ManifestSourceError(_CODES.get(exc.reason, "manifest_fetch_failed"), message)


def registry_client(ref: Reference, settings: Settings) -> DistributionClient:
    """A pull client for ``ref``'s registry: every connection meets the network policy, and the
    configured credentials go along only when they belong to this registry."""
    s = settings
    plain_http = ref.registry in s.manifest_oci_plain_http
    owned = bool(s.manifest_oci_username) and registry_listed(ref.registry, plain_http,
                                                               s.manifest_oci_credential_hosts)
    return DistributionClient(ref.registry, ref.repository, session=checked_session(s), plain_http=plain_http,
                              credentials=(s.manifest_oci_username, s.manifest_oci_password) if owned else None,
                              token_realms=s.manifest_oci_token_realms, actions="pull", anonymous_tokens=True,
                              timeout=s.manifest_fetch_timeout)


def _manifest(client: DistributionClient, ref: Reference, reference: str) -> tuple[dict[str, Any], str]:
    with oci_client.errors_as(source_error):
        found = client.get_manifest(reference)
    if found is None:
        raise ManifestSourceError("manifest_not_found", f"the registry has no OCI manifest "
                                                        f"({ref.repository} {ref.reference})")
    body, content_type = found
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ManifestSourceError("manifest_fetch_failed", "the OCI manifest is not JSON") from exc
    if not isinstance(doc, dict):
        raise ManifestSourceError("manifest_fetch_failed", "the OCI manifest is not an object")
    doc.setdefault("mediaType", content_type.split(";")[0].strip())
    return doc, oci_client.sha256_digest(body)


def _blob(client: DistributionClient, ref: Reference, descriptor: dict[str, Any], limit: int) -> bytes:
    digest = descriptor.get("digest", "")
    if not isinstance(digest, str) or not is_digest(digest):
        raise ManifestSourceError("manifest_fetch_failed", "a layer has no sha256 digest")
    size = descriptor.get("size")
    if isinstance(size, int) and size > limit:
        raise ManifestSourceError("manifest_too_large", f"a layer is larger than {limit} bytes")
    with oci_client.errors_as(source_error):
        data = client.get_blob(digest, limit)
    if data is None:
        raise ManifestSourceError("manifest_not_found", f"the registry has no layer ({ref.repository} {digest})")
    return data


def _pick_from_index(index: dict[str, Any]) -> str:
    entries = [m for m in index.get("manifests", []) if isinstance(m, dict)]
    if not entries:
        raise ManifestSourceError("manifest_not_found", "the OCI index lists no manifests")
    for entry in entries:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return str(entry.get("digest"))
    return str(entries[0].get("digest"))


def _from_tar(data: bytes, media_type: str) -> dict[str, bytes]:
    if data[:2] == b"\x1f\x8b" or media_type.endswith("gzip"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                data = gz.read(MAX_LAYER_BYTES + 1)
        except (OSError, EOFError):
            return {}
        if len(data) > MAX_LAYER_BYTES:
            raise ManifestSourceError("manifest_too_large", "a layer unpacks to more than its limit")
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in ("manifest.json", "manifest.sig") and member.isreg():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        found[name] = fh.read()
    except tarfile.TarError:
        return {}
    return found


def pull_manifest(uri: str, settings: Settings) -> Artifact:
    ref = parse_reference(uri)
    client = registry_client(ref, settings)
    with client.session:
        return _pull(client, ref, settings)


def _pull(client: DistributionClient, ref: Reference, settings: Settings) -> Artifact:
    doc, digest = _manifest(client, ref, ref.reference)
    if doc.get("mediaType") in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        doc, digest = _manifest(client, ref, _pick_from_index(doc))
    layers = [layer for layer in doc.get("layers", []) if isinstance(layer, dict)]
    if not layers:
        raise ManifestSourceError("manifest_not_found", "the OCI artifact has no layers")
    files: dict[str, bytes] = {}
    titled = {str((layer.get("annotations") or {}).get(TITLE, "")): layer for layer in layers}
    limit = settings.manifest_max_bytes
    if "manifest.json" in titled:
        files["manifest.json"] = _blob(client, ref, titled["manifest.json"], limit)
        if "manifest.sig" in titled:
            files["manifest.sig"] = _blob(client, ref, titled["manifest.sig"], limit)
    else:
        for layer in layers:
            media = str(layer.get("mediaType", ""))
            if "tar" not in media:
                continue
            # Later layers override earlier ones, as they do when the image is unpacked.
            files.update(_from_tar(_blob(client, ref, layer, MAX_LAYER_BYTES), media))
    if "manifest.json" not in files:
        raise ManifestSourceError("manifest_not_found", "the OCI artifact holds no manifest.json")
    for name, data in files.items():
        if len(data) > limit:
            raise ManifestSourceError("manifest_too_large", f"{name} is larger than {limit} bytes")
    return Artifact(files["manifest.json"], files.get("manifest.sig"), digest)
