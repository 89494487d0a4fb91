"""Where OCI content goes: a registry over the OCI distribution API, or an OCI image layout folder.

Both offer the same small interface (``OciTarget``). The registry client speaks plain HTTP(S) with
``requests``: monolithic blob uploads (POST then PUT ?digest=), manifests by tag, and the two auth
schemes registries use (Basic, and Bearer tokens fetched from the realm a 401 names). The credentials
belong to the configured registry: the Authorization header goes only to its own origin, and a token
realm receives them only as ``workers.oci_credentials.realm_refusal`` allows (the registry's own host
and port or a listed realm; plain HTTP only for a plain-HTTP registry and a realm on its host).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from workers.bundle import confine
from workers.oci_credentials import realm_refusal
from workers.uploads.errors import PermanentUploadError, TransientUploadError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json"])
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class PutResult:
    digest: str
    subject_supported: bool  # the registry answered OCI-Subject: it indexes referrers itself


class OciTarget(Protocol):
    @property
    def reference_base(self) -> str: ...
    def put_blob(self, data: bytes) -> str: ...
    def put_manifest(self, ref: str, body: bytes, media_type: str) -> PutResult: ...
    def get_manifest(self, ref: str) -> bytes | None: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    def __init__(self, registry: str, repository: str, *, plain_http: bool = False, username: str = "",
                 password: str = "", ca_bundle: str = "", timeout: float = 60,
                 session: requests.Session | None = None, token_realms: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.repository = repository
        self.plain_http = plain_http
        self.token_realms = token_realms
        self.base = f"{'http' if plain_http else 'https'}://{registry}"
        self.username, self.password = username, password
        self.verify: bool | str = ca_bundle or True
        self.timeout = timeout
        self.session = session or requests.Session()
        self._auth_header: str | None = None

    @property
    def reference_base(self) -> str:
        return f"{self.registry}/{self.repository}"

    # -- HTTP with auth --------------------------------------------------------------------------
    def _own_origin(self, url: str) -> bool:
        ours, theirs = urlsplit(self.base), urlsplit(url)
        return (theirs.scheme, theirs.netloc.lower()) == (ours.scheme, ours.netloc.lower())

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        # An upload location may name another host: the credentials stay with the registry.
        if self._auth_header and self._own_origin(url):
            headers["Authorization"] = self._auth_header
        try:
            return self.session.request(method, url, headers=headers, timeout=self.timeout, verify=self.verify,
                                        allow_redirects=method in ("GET", "HEAD"), **kwargs)
        except requests.RequestException as exc:
            raise TransientUploadError(f"registry {method} failed: {exc.__class__.__name__}") from exc

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        resp = self._send(method, url, **kwargs)
        if resp.status_code == 401:
            self._authenticate(resp.headers.get("WWW-Authenticate", ""))
            resp = self._send(method, url, **kwargs)
        if resp.status_code in (401, 403):
            raise PermanentUploadError("registry_auth_failed",
                                       f"the registry refused the credentials (HTTP {resp.status_code})")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientUploadError(f"registry {method} answered HTTP {resp.status_code}")
        return resp

    def _authenticate(self, challenge: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        if not self.username:
            raise PermanentUploadError("registry_auth_required", "the registry needs credentials; none are set")
        if scheme == "basic":
            token = requests.auth._basic_auth_str(self.username, self.password)
            self._auth_header = token
            return
        if scheme != "bearer":
            raise PermanentUploadError("registry_auth_unsupported", f"unsupported registry auth scheme {scheme!r}")
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise PermanentUploadError("registry_auth_unsupported", "the registry's token realm is not a URL")
        refusal = realm_refusal(realm, self.registry, self.plain_http, self.token_realms)
        if refusal is not None:
            raise PermanentUploadError("registry_token_realm_not_allowed",
                                       f"{refusal} (CERTUS_ASSURANCE_REGISTRY_TOKEN_REALMS)")
        params.setdefault("scope", f"repository:{self.repository}:pull,push")
        try:
            resp = self.session.get(realm, params=params, auth=(self.username, self.password),
                                    timeout=self.timeout, verify=self.verify)
        except requests.RequestException as exc:
            raise TransientUploadError(f"registry token request failed: {exc.__class__.__name__}") from exc
        if resp.status_code != 200:
            raise PermanentUploadError("registry_auth_failed", f"the token service answered HTTP {resp.status_code}")
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise PermanentUploadError("registry_auth_failed", "the token service answered no token")
        self._auth_header = f"Bearer {token}"

    def _fail(self, what: str, resp: requests.Response) -> PermanentUploadError:
        return PermanentUploadError("registry_refused", f"the registry refused {what}: HTTP {resp.status_code} "
                                                        f"{resp.text[:200]}")

    # -- OCI distribution ------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        url = f"{self.base}/v2/{self.repository}/blobs/{digest}"
        if self._request("HEAD", url).status_code == 200:
            return digest
        start = self._request("POST", f"{self.base}/v2/{self.repository}/blobs/uploads/")
        if start.status_code != 202 or "Location" not in start.headers:
            raise self._fail("a blob upload", start)
        location = urljoin(self.base + "/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self._request("PUT", f"{location}{sep}digest={digest}", data=data,
                             headers={"Content-Type": "application/octet-stream"})
        if done.status_code != 201:
            raise self._fail(f"blob {digest}", done)
        return digest

    def put_manifest(self, ref: str, body: bytes, media_type: str) -> PutResult:
        resp = self._request("PUT", f"{self.base}/v2/{self.repository}/manifests/{ref}", data=body,
                             headers={"Content-Type": media_type})
        if resp.status_code != 201:
            raise self._fail(f"manifest {ref}", resp)
        digest = sha256_digest(body)
        returned = resp.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise PermanentUploadError("registry_digest_mismatch", f"the registry stored {returned}, not {digest}")
        return PutResult(digest, bool(resp.headers.get("OCI-Subject")))

    def get_manifest(self, ref: str) -> bytes | None:
        resp = self._request("GET", f"{self.base}/v2/{self.repository}/manifests/{ref}", headers={"Accept": _ACCEPT})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(f"reading manifest {ref}", resp)
        return resp.content


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
