"""One client for the OCI distribution API: pulling manifests (``workers.pipeline.oci``) and pushing
bundles (``workers.uploads.registry``) both speak to registries through it, under the same rules:

* Credentials belong to the registry they were given for. The ``Authorization`` header (Basic, or
  a Bearer token) goes only to the registry's own origin: never to a redirect target or an upload
  location on another host or scheme.
* A token realm named by a ``401`` receives the credentials only as
  ``workers.oci_credentials.realm_refusal`` allows: the registry's own host and port or a listed
  realm; plain HTTP only for a plain-HTTP registry and a realm on its host. Without credentials a
  realm is asked for an anonymous token only when the caller allows it, never over plain HTTP for
  an HTTPS registry.
* Redirects (of GET and HEAD only) and upload locations never lead from https to plain http.
* Every connection goes through the caller's ``requests`` session; the pull side's connects only
  to addresses the network policy checked (``workers.pipeline.pinned_http``).
* Bodies are read up to a limit; a manifest or blob asked for by digest must have that digest.

Failures raise ``RegistryError`` with a ``reason`` from the constants below; each side turns them
into its own stable error codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from workers.oci_credentials import realm_refusal

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TOKEN_BYTES = 1024 * 1024
MAX_REDIRECTS = 5

# RegistryError.reason
AUTH_REQUIRED = "auth_required"  # credentials are wanted and none (belonging to this registry) were given
AUTH_FAILED = "auth_failed"  # the credentials or the token were refused, or no token came
AUTH_UNSUPPORTED = "auth_unsupported"  # a challenge this client does not speak
REALM_UNUSABLE = "realm_unusable"  # the token realm is no plain http(s) URL, or plain HTTP for an HTTPS registry
REALM_NOT_ALLOWED = "realm_not_allowed"  # the token realm may not receive the credentials (oci_credentials)
DOWNGRADE = "downgrade"  # a redirect or upload location from https to plain http (or to no http(s) URL)
UNREACHABLE = "unreachable"  # connection failed, timed out or broke off
TLS = "tls"  # the certificate did not verify
STATUS = "status"  # an unexpected HTTP status (``RegistryError.status``)
TOO_LARGE = "too_large"
DIGEST_MISMATCH = "digest_mismatch"

_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")


class RegistryError(Exception):
    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@contextmanager
def errors_as(translate: Callable[[RegistryError], Exception]) -> Iterator[None]:
    """Raise what ``translate`` makes of a ``RegistryError``: each side's own stable error."""
    try:
        yield
    except RegistryError as exc:
        raise translate(exc) from exc


@dataclass(frozen=True)
class PutResult:
    digest: str
    subject_supported: bool  # the registry answered OCI-Subject: it indexes referrers itself


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(reference: str) -> bool:
    return bool(_DIGEST.match(reference))


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def check_target(current: str, target: str) -> None:
    """Refuse following ``current`` to ``target`` when that leaves http(s) or goes from https to http."""
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(DOWNGRADE, "the registry sent a location that is not an http(s) URL")
    if urlsplit(current).scheme == "https" and parts.scheme == "http":
        raise RegistryError(DOWNGRADE, f"the registry sent an https request on to plain HTTP ({parts.netloc})")


def read_body(resp: requests.Response, limit: int, what: str) -> bytes:
    """The body of ``resp`` (streamed), refused past ``limit`` bytes."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RegistryError(TOO_LARGE, f"the {what} is larger than {limit} bytes")
    body = bytearray()
    try:
        for chunk in resp.iter_content(1 << 16):
            body += chunk
            if len(body) > limit:
                raise RegistryError(TOO_LARGE, f"the {what} is larger than {limit} bytes")
    except requests.RequestException as exc:
        raise RegistryError(UNREACHABLE, f"reading the {what} failed: {exc.__class__.__name__}") from exc
    return bytes(body)


def _excerpt(resp: requests.Response) -> str:
    try:
        return next(resp.iter_content(200), b"").decode("utf-8", "replace")[:200]
    except requests.RequestException:
        return ""


class DistributionClient:
    """``repository`` on ``registry`` (``host[:port]``). ``credentials`` must already be known to
    belong to this registry; ``actions`` is the token scope asked for by default (``pull`` or
    ``pull,push``); ``anonymous_tokens`` lets a Bearer challenge be answered without credentials."""

    def __init__(self, registry: str, repository: str, *, session: requests.Session, plain_http: bool = False,
                 credentials: tuple[str, str] | None = None, token_realms: tuple[str, ...] = (),
                 actions: str = "pull", anonymous_tokens: bool = False, timeout: float = 60) -> None:
        self.registry = registry
        self.repository = repository
        self.session = session
        self.plain_http = plain_http
        self.credentials = credentials
        self.token_realms = token_realms
        self.actions = actions
        self.anonymous_tokens = anonymous_tokens
        self.timeout = timeout
        self.base = f"{'http' if plain_http else 'https'}://{registry}"
        self.sent_credentials = False
        self._authorization: str | None = None

    @property
    def reference_base(self) -> str:
        return f"{self.registry}/{self.repository}"

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.repository}/{path}"

    # -- HTTP ------------------------------------------------------------------------------------
    def _exchange(self, method: str, url: str, *, origin: str, authorization: str | None,
                  headers: dict[str, str] | None = None, data: bytes | None = None,
                  stream: bool = False) -> requests.Response:
        """One request, following redirects of GET and HEAD; ``authorization`` goes to ``origin`` only."""
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers or {})
            if authorization and _origin(url) == _origin(origin):
                sent["Authorization"] = authorization
            try:
                # verify named on every request: a session's own gives way to REQUESTS_CA_BUNDLE otherwise
                resp = self.session.request(method, url, headers=sent, data=data, timeout=self.timeout,
                                            stream=stream, allow_redirects=False, verify=self.session.verify)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(TLS, f"TLS verification failed for {urlsplit(url).netloc}") from exc
            except requests.RequestException as exc:
                raise RegistryError(UNREACHABLE, f"{urlsplit(url).netloc} is unreachable: "
                                                 f"{exc.__class__.__name__}") from exc
            if not (resp.is_redirect and method in ("GET", "HEAD")):
                return resp
            target = urljoin(url, resp.headers["Location"])
            resp.close()
            check_target(url, target)
            url = target
        raise RegistryError(STATUS, "the registry redirected too many times")

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, data: bytes | None = None,
                stream: bool = False) -> requests.Response:
        """``method`` on ``url``; a ``401`` is answered once, with the credentials or a token."""
        resp = self._exchange(method, url, origin=self.base, authorization=self._authorization, headers=headers,
                              data=data, stream=stream)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.close()
        self._authenticate(challenge)
        resp = self._exchange(method, url, origin=self.base, authorization=self._authorization, headers=headers,
                              data=data, stream=stream)
        if resp.status_code == 401:
            resp.close()
            if self.sent_credentials:
                raise RegistryError(AUTH_FAILED, "the registry refused the credentials", 401)
            raise RegistryError(AUTH_REQUIRED, "the registry wants credentials and none are configured for it", 401)
        return resp

    # -- authentication --------------------------------------------------------------------------
    def _authenticate(self, challenge: str) -> None:
        scheme, _, rest = challenge.strip().partition(" ")
        params = dict(_CHALLENGE.findall(rest))
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise RegistryError(AUTH_REQUIRED, "the registry wants credentials and none are configured for it")
            self._authorization = basic_authorization(*self.credentials)
            self.sent_credentials = True
            return
        if scheme.lower() != "bearer" or not params.get("realm"):
            raise RegistryError(AUTH_UNSUPPORTED, "the registry asks for an unsupported authentication")
        if self.credentials is None and not self.anonymous_tokens:
            raise RegistryError(AUTH_REQUIRED, "the registry wants credentials and none are configured for it")
        realm = params["realm"]
        self._check_realm(realm)
        query = {"scope": params.get("scope") or f"repository:{self.repository}:{self.actions}"}
        if "service" in params:
            query["service"] = params["service"]
        creds = self.credentials
        resp = self._exchange("GET", realm + ("&" if "?" in realm else "?") + urlencode(query), origin=realm,
                              authorization=basic_authorization(*creds) if creds else None, stream=True)
        self.sent_credentials = creds is not None
        with resp:
            if resp.status_code in (401, 403) and creds is None:
                raise RegistryError(AUTH_REQUIRED, "the registry's token service refuses an anonymous token",
                                    resp.status_code)
            if resp.status_code != 200:
                raise RegistryError(AUTH_FAILED, f"the registry's token service answered HTTP {resp.status_code}",
                                    resp.status_code)
            body = read_body(resp, MAX_TOKEN_BYTES, "token")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(AUTH_FAILED, "the registry's token service sent no token")
        self._authorization = f"Bearer {token}"

    def _check_realm(self, realm: str) -> None:
        try:
            parts = urlsplit(realm)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.username is None
        except ValueError:
            usable = False
        if not usable:
            raise RegistryError(REALM_UNUSABLE, "the registry's token realm is not a plain http(s) URL")
        if self.credentials is not None:
            refusal = realm_refusal(realm, self.registry, self.plain_http, self.token_realms)
            if refusal is not None:
                raise RegistryError(REALM_NOT_ALLOWED, refusal)
        elif parts.scheme == "http" and not self.plain_http:
            raise RegistryError(REALM_UNUSABLE, "the registry's token realm is plain HTTP and the registry is not")

    # -- the distribution API --------------------------------------------------------------------
    @staticmethod
    def _refused(resp: requests.Response, what: str) -> RegistryError:
        return RegistryError(STATUS, f"the registry refused {what}: HTTP {resp.status_code} {_excerpt(resp)}",
                             resp.status_code)

    def _expect(self, resp: requests.Response, ok: tuple[int, ...], what: str) -> None:
        if resp.status_code not in ok:
            raise self._refused(resp, what)

    def get_manifest(self, reference: str, limit: int = MAX_MANIFEST_BYTES) -> tuple[bytes, str] | None:
        """The manifest's bytes and content type; None when the registry has none by that reference."""
        with self.request("GET", self.url(f"manifests/{reference}"), headers={"Accept": ACCEPT},
                          stream=True) as resp:
            if resp.status_code == 404:
                return None
            self._expect(resp, (200,), f"reading manifest {reference}")
            body = read_body(resp, limit, "manifest")
            content_type = resp.headers.get("Content-Type", "")
        if is_digest(reference) and sha256_digest(body) != reference:
            raise RegistryError(DIGEST_MISMATCH, "the registry sent a manifest with another digest")
        return body, content_type

    def get_blob(self, digest: str, limit: int) -> bytes | None:
        """The blob ``digest`` (checked against it); None when the registry does not have it."""
        if not is_digest(digest):
            raise RegistryError(DIGEST_MISMATCH, "a blob has no sha256 digest")
        with self.request("GET", self.url(f"blobs/{digest}"), stream=True) as resp:
            if resp.status_code == 404:
                return None
            self._expect(resp, (200,), f"reading blob {digest}")
            data = read_body(resp, limit, "layer")
        if sha256_digest(data) != digest:
            raise RegistryError(DIGEST_MISMATCH, "a layer does not match its digest")
        return data

    def has_blob(self, digest: str) -> bool:
        with self.request("HEAD", self.url(f"blobs/{digest}")) as resp:
            self._expect(resp, (200, 404), f"checking blob {digest}")
            return resp.status_code == 200

    def put_blob(self, data: bytes) -> str:
        """Upload ``data`` (monolithic: POST, then PUT ?digest=) unless the registry has it."""
        digest = sha256_digest(data)
        if self.has_blob(digest):
            return digest
        with self.request("POST", self.url("blobs/uploads/")) as start:
            if start.status_code != 202 or "Location" not in start.headers:
                raise self._refused(start, "a blob upload")
            location = urljoin(self.base + "/", start.headers["Location"])
        check_target(self.base, location)
        sep = "&" if "?" in location else "?"
        with self.request("PUT", f"{location}{sep}digest={digest}", data=data,
                          headers={"Content-Type": "application/octet-stream"}) as done:
            self._expect(done, (201,), f"blob {digest}")
        return digest

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> PutResult:
        with self.request("PUT", self.url(f"manifests/{reference}"), data=body,
                          headers={"Content-Type": media_type}) as resp:
            self._expect(resp, (201,), f"manifest {reference}")
            digest = sha256_digest(body)
            returned = resp.headers.get("Docker-Content-Digest")
            if returned and returned != digest:
                raise RegistryError(DIGEST_MISMATCH, f"the registry stored {returned}, not {digest}")
            return PutResult(digest, bool(resp.headers.get("OCI-Subject")))
