"""Fetching a manifest (and the signature that comes with it) from where the request points.

* ``manifest_path``: a file inside the checked-out source; ``..``, absolute paths and symlinks that
  leave the tree are refused.
* ``s3://bucket/key``: boto3, against S3_ENDPOINT_URL when set; only under MANIFEST_S3_ALLOWED.
* ``https://host/path``: TLS verified (MANIFEST_CA_BUNDLE for a private CA); redirects only to https;
  every connection goes to the address the network policy checked (``pinned_http``).
* ``oci://registry/repository[:tag|@digest]``: see ``workers.pipeline.oci``.
* ``file:///path``: only under MANIFEST_FILE_ROOTS.

The signature is ``manifest_signature_uri`` when given, else the file next to the manifest:
``manifest.sig`` for ``manifest.json`` (extension replaced by ``.sig``), then ``manifest.json.sig``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from tasks import manifest_s3, netpolicy
from tasks.settings import Settings
from workers.pipeline.pinned_http import pinned_session
from workers.sources.errors import SourceError

MAX_REDIRECTS = 5


class ManifestSourceError(SourceError):
    """The manifest (or its signature) could not be fetched; ``code`` is stable."""


@dataclass
class Fetched:
    data: bytes
    signature: bytes | None  # the signature file's bytes as found (base64 text), if any
    location: str  # where it came from, for manifest-info.json (credentials never included)
    signature_location: str | None = None


def too_large(what: str, limit: int) -> ManifestSourceError:
    return ManifestSourceError("manifest_too_large", f"the {what} is larger than {limit} bytes")


def _cap(data: bytes, limit: int, what: str) -> bytes:
    if len(data) > limit:
        raise too_large(what, limit)
    return data


def sibling_signature_names(name: str) -> list[str]:
    """``manifest.json`` -> ``manifest.sig``, ``manifest.json.sig``."""
    stem, ext = posixpath.splitext(name)
    out = []
    if ext:
        out.append(stem + ".sig")
    out.append(name + ".sig")
    return out


# -- manifest_path ---------------------------------------------------------------------------
def confined_file(root: Path, relative: str) -> Path:
    """``root/relative`` when it is a regular file whose real path stays inside ``root``."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative or os.path.isabs(relative):
        raise ManifestSourceError("manifest_path_invalid", "manifest_path must be a relative path inside the source")
    parts = relative.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise ManifestSourceError("manifest_path_invalid", "manifest_path must not leave the source tree")
    real_root = root.resolve()
    parts = [p for p in parts if p not in ("", ".")]
    # Every link on the way must point inside the tree, even one whose path comes back into it.
    for depth in range(1, len(parts) + 1):
        step = root.joinpath(*parts[:depth])
        if step.is_symlink():
            real = step.resolve()
            if real != real_root and real_root not in real.parents:
                raise ManifestSourceError("manifest_path_invalid",
                                          "manifest_path leaves the source tree (through a link)")
    target = root.joinpath(*parts).resolve()
    if target != real_root and real_root not in target.parents:
        raise ManifestSourceError("manifest_path_invalid", "manifest_path leaves the source tree (through a link)")
    if not target.is_file():
        raise ManifestSourceError("manifest_not_found", f"manifest_path {relative!r} is not a file in the source")
    return target


def from_source_tree(root: Path, relative: str, settings: Settings) -> Fetched:
    path = confined_file(root, relative)
    if path.stat().st_size > settings.manifest_max_bytes:
        raise too_large("manifest", settings.manifest_max_bytes)
    data = path.read_bytes()
    parent = posixpath.dirname(relative.replace("\\", "/"))
    for name in sibling_signature_names(posixpath.basename(relative)):
        rel_sig = posixpath.join(parent, name) if parent else name
        try:
            sig_path = confined_file(root, rel_sig)
        except ManifestSourceError:
            continue
        return Fetched(data, _cap(sig_path.read_bytes(), settings.manifest_max_bytes, "signature"), relative, rel_sig)
    return Fetched(data, None, relative)


# -- URIs --------------------------------------------------------------------------------------
def fetch_uri(uri: str, settings: Settings, signature_uri: str | None, workspace: str | None = None) -> Fetched:
    """``workspace``: the scan's, for MANIFEST_S3_ALLOWED entries that belong to one workspace."""
    scheme = urlsplit(uri).scheme
    if scheme == "oci":
        from workers.pipeline import oci

        artifact = oci.pull_manifest(uri, settings)
        sig_at = uri + "#manifest.sig" if artifact.signature else None
        fetched = Fetched(artifact.manifest, artifact.signature, uri, sig_at)
        if signature_uri:
            fetched.signature = _require(signature_uri, settings, "signature", workspace)
            fetched.signature_location = signature_uri
        return fetched
    data = _require(uri, settings, "manifest", workspace)
    if signature_uri:
        return Fetched(data, _require(signature_uri, settings, "signature", workspace), uri, signature_uri)
    for candidate in _sibling_uris(uri):
        sig = get_bytes(candidate, settings, "signature", missing_ok=True, workspace=workspace)
        if sig is not None:
            return Fetched(data, sig, uri, candidate)
    return Fetched(data, None, uri)


def _sibling_uris(uri: str) -> Iterator[str]:
    parts = urlsplit(uri)
    directory, name = posixpath.split(parts.path)
    for sig in sibling_signature_names(name):
        yield parts._replace(path=posixpath.join(directory, sig)).geturl()


def _require(uri: str, settings: Settings, what: str, workspace: str | None) -> bytes:
    data = get_bytes(uri, settings, what, workspace=workspace)
    if data is None:  # pragma: no cover - get_bytes raises instead when missing_ok is false
        raise ManifestSourceError("manifest_not_found", f"the {what} was not found")
    return data


def get_bytes(uri: str, settings: Settings, what: str, missing_ok: bool = False,
              workspace: str | None = None) -> bytes | None:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise ManifestSourceError("manifest_uri_not_allowed", "manifest URIs must not carry credentials")
    if parts.scheme == "s3":
        return _get_s3(uri, settings, what, missing_ok, workspace)
    if parts.scheme == "https":
        return _get_https(uri, settings, what, missing_ok)
    if parts.scheme == "file":
        return _get_file(parts.path, settings, what, missing_ok)
    if parts.scheme == "oci":
        raise ManifestSourceError("manifest_uri_not_allowed", "an oci:// signature must travel inside the artifact")
    raise ManifestSourceError("manifest_uri_not_allowed", f"manifest URIs may not use {parts.scheme or 'no'} scheme")


def _get_file(path: str, settings: Settings, what: str, missing_ok: bool) -> bytes | None:
    if not settings.manifest_file_roots:
        raise ManifestSourceError("manifest_uri_not_allowed",
                                  "file:// manifests are disabled (CERTUS_ASSURANCE_MANIFEST_FILE_ROOTS)")
    real = Path(path).resolve()
    if not any(real == Path(root) or Path(root) in real.parents for root in settings.manifest_file_roots):
        raise ManifestSourceError("manifest_uri_not_allowed", "the file:// manifest is outside MANIFEST_FILE_ROOTS")
    if not real.is_file():
        if missing_ok:
            return None
        raise ManifestSourceError("manifest_not_found", f"the {what} file does not exist")
    if real.stat().st_size > settings.manifest_max_bytes:
        raise too_large(what, settings.manifest_max_bytes)
    return real.read_bytes()


def _get_s3(uri: str, settings: Settings, what: str, missing_ok: bool, workspace: str | None) -> bytes | None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = manifest_s3.split_uri(uri)
    if not bucket or not key:
        raise ManifestSourceError("manifest_uri_invalid", "an s3:// URI needs a bucket and a key")
    # The service's S3 credentials read far more than manifests: only the allowed places are read.
    if not manifest_s3.allowed(uri, workspace, settings.manifest_s3_allowed):
        raise ManifestSourceError("manifest_source_not_allowed",
                                  f"the {what} is not under a bucket and prefix allowed for s3:// manifests "
                                  "(CERTUS_ASSURANCE_MANIFEST_S3_ALLOWED)")
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None, region_name=settings.s3_region,
                          config=Config(connect_timeout=settings.manifest_fetch_timeout,
                                        read_timeout=settings.manifest_fetch_timeout, retries={"max_attempts": 2}))
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        err = exc.response.get("Error", {}).get("Code", "")
        # S3 answers 403 for a missing key when the caller may not list the bucket: a signature
        # looked up beside the manifest is then simply absent.
        if missing_ok and (status in (403, 404) or err in ("NoSuchKey", "AccessDenied")):
            return None
        if status == 404 or err in ("NoSuchKey", "NoSuchBucket", "404"):
            raise ManifestSourceError("manifest_not_found", f"the {what} s3://{bucket}/{key} does not exist") from exc
        raise ManifestSourceError("manifest_fetch_failed", f"S3 refused the {what}: {err or status}") from exc
    except BotoCoreError as exc:
        raise ManifestSourceError("manifest_fetch_failed", f"S3 unreachable: {exc.__class__.__name__}") from exc
    body = obj["Body"]
    try:
        data = body.read(settings.manifest_max_bytes + 1)
    finally:
        body.close()
    return _cap(data, settings.manifest_max_bytes, what)


def check_network_host(host: str | None, port: int | None, settings: Settings) -> list[str]:
    """The addresses ``host`` resolves to, all allowed by the network policy; refuses it otherwise."""
    if not host:
        raise ManifestSourceError("manifest_uri_invalid", "the manifest URI names no host")
    try:
        return netpolicy.check_host(host, port, (*settings.manifest_allowed_hosts, *settings.git_allowed_hosts))
    except netpolicy.HostNotAllowed as exc:
        code = "manifest_fetch_failed" if exc.code.endswith("unresolvable") else "manifest_uri_not_allowed"
        raise ManifestSourceError(code, str(exc).replace("CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS",
                                                         "CERTUS_ASSURANCE_MANIFEST_ALLOWED_HOSTS")) from exc


def tls_verify(settings: Settings) -> bool | str:
    return settings.manifest_ca_bundle or True


def checked_session(settings: Settings) -> requests.Session:
    """A session that connects only to addresses the network policy checked, at the moment it connects."""
    session = pinned_session(lambda host, port: check_network_host(host, port, settings))
    session.verify = tls_verify(settings)
    return session


def read_capped(resp: requests.Response, limit: int, what: str) -> bytes:
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large(what, limit)
    chunks, total = [], 0
    for chunk in resp.iter_content(65536):
        total += len(chunk)
        if total > limit:
            raise too_large(what, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _get_https(uri: str, settings: Settings, what: str, missing_ok: bool) -> bytes | None:
    with checked_session(settings) as session:
        return _follow_https(session, uri, settings, what, missing_ok)


def _follow_https(session: requests.Session, uri: str, settings: Settings, what: str,
                  missing_ok: bool) -> bytes | None:
    url = uri
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise ManifestSourceError("manifest_uri_not_allowed", "manifest downloads must stay on https://")
        if not parts.hostname:
            raise ManifestSourceError("manifest_uri_invalid", "the manifest URI names no host")
        try:
            with session.get(url, timeout=settings.manifest_fetch_timeout, allow_redirects=False,
                             stream=True) as resp:
                if resp.is_redirect:
                    url = urljoin(url, resp.headers.get("Location", ""))
                    continue
                if resp.status_code in (403, 404) and missing_ok:
                    return None
                if resp.status_code == 404:
                    raise ManifestSourceError("manifest_not_found", f"the {what} was not found (HTTP 404)")
                if resp.status_code != 200:
                    raise ManifestSourceError("manifest_fetch_failed",
                                              f"fetching the {what} failed: HTTP {resp.status_code}")
                return read_capped(resp, settings.manifest_max_bytes, what)
        except requests.exceptions.SSLError as exc:
            raise ManifestSourceError("manifest_tls_error", f"TLS verification failed for {parts.hostname}") from exc
        except requests.RequestException as exc:
            raise ManifestSourceError("manifest_fetch_failed",
                                      f"fetching the {what} failed: {exc.__class__.__name__}") from exc
    raise ManifestSourceError("manifest_fetch_failed", "too many redirects")
