"""Pulling a manifest out of an OCI artifact or image, over plain HTTP(S) per the OCI distribution spec.

``oci://registry[:port]/repository[:tag|@sha256:<hex>]`` (tag defaults to ``latest``). The manifest
is the layer titled ``manifest.json`` (annotation ``org.opencontainers.image.title``), its signature
the layer titled ``manifest.sig``; an image without titled layers is searched for those two files at
the root of its tar layers. Every blob is checked against its digest. Registries that answer 401 are
retried with a bearer token (from the realm their ``WWW-Authenticate`` names) or basic auth.

MANIFEST_OCI_USERNAME / MANIFEST_OCI_PASSWORD go only to the registries of MANIFEST_OCI_CREDENTIAL_HOSTS
and to token realms ``workers.oci_credentials`` allows for them; every other registry is asked
anonymously, and one that insists on credentials fails with ``manifest_auth_required``. Every
connection (registry, realm, redirects) goes to an address the network policy checked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from tasks.settings import Settings
from workers.oci_credentials import realm_refusal, registry_listed
from workers.pipeline.manifest_sources import ManifestSourceError, checked_session, read_capped

TITLE = "org.opencontainers.image.title"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_INDEX_BYTES = 4 * 1024 * 1024
MAX_LAYER_BYTES = 64 * 1024 * 1024
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")


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
        if not _DIGEST.match(ref):
            raise ManifestSourceError("manifest_uri_invalid", "an OCI digest must be sha256:<64 hex>")
    else:
        repo, _, ref = path.rpartition(":") if ":" in path else (path, "", "latest")
        if not _TAG.match(ref):
            raise ManifestSourceError("manifest_uri_invalid", "not a valid OCI tag")
    if not _REPO.match(repo):
        raise ManifestSourceError("manifest_uri_invalid", "not a valid OCI repository name")
    return Reference(parts.netloc.lower(), repo, ref)


def _auth_required() -> ManifestSourceError:
    return ManifestSourceError("manifest_auth_required",
                               "the registry wants credentials and none are configured for it "
                               "(CERTUS_ASSURANCE_MANIFEST_OCI_CREDENTIAL_HOSTS)")


class RegistryClient:
    def __init__(self, ref: Reference, settings: Settings) -> None:
        self.ref = ref
        self.settings = settings
        self.plain_http = ref.registry in settings.manifest_oci_plain_http
        self.base = f"{'http' if self.plain_http else 'https'}://{ref.registry}"
        # Every connection, redirects and token realms included, meets the network policy.
        self.session = checked_session(settings)
        self.auth_header: str | None = None
        self.sent_credentials = False
        self.owns_credentials = bool(settings.manifest_oci_username) and registry_listed(
            ref.registry, self.plain_http, settings.manifest_oci_credential_hosts)

    def _creds(self) -> tuple[str, str] | None:
        """The configured credentials, when they belong to this registry; None otherwise."""
        s = self.settings
        return (s.manifest_oci_username, s.manifest_oci_password) if self.owns_credentials else None

    def _authenticate(self, challenge: str) -> None:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
        creds = self._creds()
        if scheme.lower() == "basic":
            if creds is None:
                raise _auth_required()
            # Sent by ``get`` to this registry's own URLs only (requests drops it on a redirect elsewhere).
            self.auth_header = requests.auth._basic_auth_str(*creds)
            self.sent_credentials = True
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise ManifestSourceError("manifest_fetch_failed", "the registry asks for an unsupported authentication")
        realm = params["realm"]
        if creds is not None:
            refusal = realm_refusal(realm, self.ref.registry, self.plain_http, self.settings.manifest_oci_token_realms)
            if refusal is not None:
                raise ManifestSourceError("manifest_token_realm_not_allowed",
                                          f"{refusal} (CERTUS_ASSURANCE_MANIFEST_OCI_TOKEN_REALMS)")
        else:
            parts = urlsplit(realm)
            if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not self.plain_http):
                raise ManifestSourceError("manifest_fetch_failed", "the registry's token realm is not usable")
        query = {"scope": params.get("scope") or f"repository:{self.ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        try:
            resp = self.session.get(realm, params=query, auth=creds, timeout=self.settings.manifest_fetch_timeout)
        except requests.RequestException as exc:
            raise ManifestSourceError("manifest_fetch_failed", f"the registry's token service failed: "
                                                               f"{exc.__class__.__name__}") from exc
        self.sent_credentials = creds is not None
        if resp.status_code in (401, 403) and creds is None:
            raise _auth_required()
        if resp.status_code != 200:
            raise ManifestSourceError("manifest_fetch_failed",
                                      f"the registry refused a pull token: HTTP {resp.status_code}")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise ManifestSourceError("manifest_fetch_failed", "the registry's token service sent no token")
        self.auth_header = f"Bearer {token}"

    def get(self, path: str, accept: str | None, limit: int, what: str) -> tuple[bytes, str]:
        url = f"{self.base}/v2/{self.ref.repository}/{path}"
        for attempt in range(2):
            headers = {"Accept": accept} if accept else {}
            if self.auth_header:
                headers["Authorization"] = self.auth_header
            try:
                with self.session.get(url, headers=headers, timeout=self.settings.manifest_fetch_timeout,
                                      stream=True) as resp:
                    if resp.status_code == 401:
                        if attempt:
                            break  # refused again, with whatever credentials it was given
                        self._authenticate(resp.headers.get("WWW-Authenticate", ""))
                        continue
                    if resp.status_code == 404:
                        raise ManifestSourceError("manifest_not_found", f"the registry has no {what} "
                                                                        f"({self.ref.repository} {self.ref.reference})")
                    if resp.status_code != 200:
                        raise ManifestSourceError("manifest_fetch_failed", f"fetching the {what} failed: HTTP "
                                                                           f"{resp.status_code}")
                    return read_capped(resp, limit, what), resp.headers.get("Content-Type", "")
            except requests.exceptions.SSLError as exc:
                raise ManifestSourceError("manifest_tls_error",
                                          f"TLS verification failed for {self.ref.registry}") from exc
            except requests.RequestException as exc:
                raise ManifestSourceError("manifest_fetch_failed", f"the registry is unreachable: "
                                                                   f"{exc.__class__.__name__}") from exc
        if not self.sent_credentials:
            raise _auth_required()
        raise ManifestSourceError("manifest_fetch_failed", "the registry refused the credentials")

    def manifest(self, reference: str) -> tuple[dict[str, Any], str]:
        accept = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
        body, content_type = self.get(f"manifests/{reference}", accept, MAX_INDEX_BYTES, "OCI manifest")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ManifestSourceError("manifest_digest_mismatch", "the registry sent a manifest with another digest")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise ManifestSourceError("manifest_fetch_failed", "the OCI manifest is not JSON") from exc
        if not isinstance(doc, dict):
            raise ManifestSourceError("manifest_fetch_failed", "the OCI manifest is not an object")
        doc.setdefault("mediaType", content_type.split(";")[0].strip())
        return doc, digest

    def blob(self, descriptor: dict[str, Any], limit: int) -> bytes:
        digest = descriptor.get("digest", "")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ManifestSourceError("manifest_fetch_failed", "a layer has no sha256 digest")
        size = descriptor.get("size")
        if isinstance(size, int) and size > limit:
            raise ManifestSourceError("manifest_too_large", f"a layer is larger than {limit} bytes")
        data, _ = self.get(f"blobs/{digest}", None, limit, "layer")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ManifestSourceError("manifest_digest_mismatch", "a layer does not match its digest")
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
    client = RegistryClient(ref, settings)
    with client.session:
        return _pull(client, ref, settings)


def _pull(client: RegistryClient, ref: Reference, settings: Settings) -> Artifact:
    doc, digest = client.manifest(ref.reference)
    if doc.get("mediaType") in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        doc, digest = client.manifest(_pick_from_index(doc))
    layers = [layer for layer in doc.get("layers", []) if isinstance(layer, dict)]
    if not layers:
        raise ManifestSourceError("manifest_not_found", "the OCI artifact has no layers")
    files: dict[str, bytes] = {}
    titled = {str((layer.get("annotations") or {}).get(TITLE, "")): layer for layer in layers}
    limit = settings.manifest_max_bytes
    if "manifest.json" in titled:
        files["manifest.json"] = client.blob(titled["manifest.json"], limit)
        if "manifest.sig" in titled:
            files["manifest.sig"] = client.blob(titled["manifest.sig"], limit)
    else:
        for layer in layers:
            media = str(layer.get("mediaType", ""))
            if "tar" not in media:
                continue
            # Later layers override earlier ones, as they do when the image is unpacked.
            files.update(_from_tar(client.blob(layer, MAX_LAYER_BYTES), media))
    if "manifest.json" not in files:
        raise ManifestSourceError("manifest_not_found", "the OCI artifact holds no manifest.json")
    for name, data in files.items():
        if len(data) > limit:
            raise ManifestSourceError("manifest_too_large", f"{name} is larger than {limit} bytes")
    return Artifact(files["manifest.json"], files.get("manifest.sig"), digest)
