"""Which S3 buckets and prefixes manifests (and their signatures) may be read from.

The service reads ``s3://`` manifests with its own credentials, which can read far more than
manifests; so a manifest URI may only name an object under an entry of MANIFEST_S3_ALLOWED:
``bucket/prefix`` for every workspace, or ``workspace=bucket/prefix`` for one. A prefix is a folder:
``manifests/team`` allows ``s3://manifests/team/...``, not ``s3://manifests/team-secrets/...``; a
bucket alone allows the whole bucket. Checked at submit and again by the worker before it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


@dataclass(frozen=True)
class Entry:
    workspace: str | None  # None: every workspace
    bucket: str
    prefix: str  # "" or a folder ending in "/"

    def allows(self, workspace: str | None, bucket: str, key: str) -> bool:
        if self.workspace is not None and self.workspace != workspace:
            return False
        return bucket == self.bucket and key.startswith(self.prefix)


def _entry(text: str) -> Entry:
    workspace: str | None = None
    if "=" in text:
        workspace, _, text = text.partition("=")
        if not _WORKSPACE.match(workspace):
            raise ValueError(f"{workspace!r} is not a workspace id")
    bucket, _, prefix = text.partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(f"{bucket!r} is not an S3 bucket name")
    prefix = prefix.strip("/")
    if prefix and not safe_key(prefix):
        raise ValueError(f"the prefix of {bucket!r} has empty, '.' or '..' parts")
    return Entry(workspace, bucket, prefix + "/" if prefix else "")


def allow_list(entries: tuple[str, ...]) -> list[Entry]:
    """Parse MANIFEST_S3_ALLOWED; a malformed entry raises ``ValueError``."""
    return [_entry(e) for e in entries]


def safe_key(key: str) -> bool:
    """A key with no empty, ``.`` or ``..`` part: nothing a path normaliser could move elsewhere."""
    return bool(key) and all(part not in ("", ".", "..") for part in key.split("/"))


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` URI: the key is the path, without the leading slash."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path[1:] if parts.path.startswith("/") else parts.path


def allowed(uri: str, workspace: str | None, entries: tuple[str, ...]) -> bool:
    """Whether ``uri`` (``s3://bucket/key``) lies under an entry that applies to ``workspace``."""
    bucket, key = split_uri(uri)
    if not bucket or not safe_key(key) or urlsplit(uri).query or urlsplit(uri).fragment:
        return False
    try:
        parsed = allow_list(entries)
    except ValueError:
        return False
    return any(entry.allows(workspace, bucket, key) for entry in parsed)
