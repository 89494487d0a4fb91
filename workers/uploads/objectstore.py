"""Object stores: S3 through boto3 (any S3-compatible endpoint), or a folder with the same layout.

Transient failures (connection errors, 5xx, throttling) raise ``TransientUploadError``; others raise
``PermanentUploadError``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from workers.bundle import confine, sha256_file
from workers.uploads.errors import PermanentUploadError, TransientUploadError


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str) -> dict[str, str] | None: ...
    def put_file(self, bucket: str, key: str, path: Path, sha256: str, metadata: dict[str, str]) -> None: ...
    def put_bytes(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> None: ...
    def content_sha256(self, bucket: str, key: str) -> str | None: ...
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None: ...
    def delete(self, bucket: str, key: str) -> None: ...
    def url(self, bucket: str, key: str) -> str: ...


class FileObjectStore:
    """``{root}/{bucket}/{key}``; metadata in ``{root}/.meta/{bucket}/{key}.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        return confine(self.root / bucket, key)

    def _meta(self, bucket: str, key: str) -> Path:
        return confine(self.root / ".meta" / bucket, key + ".json")

    def _write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def head(self, bucket: str, key: str) -> dict[str, str] | None:
        path, meta = self._path(bucket, key), self._meta(bucket, key)
        if not path.is_file():
            return None
        return json.loads(meta.read_text()) if meta.is_file() else {}

    def put_file(self, bucket: str, key: str, path: Path, sha256: str, metadata: dict[str, str]) -> None:
        self.put_bytes(bucket, key, path.read_bytes(), {**metadata, "sha256": sha256})

    def put_bytes(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> None:
        meta = {"sha256": hashlib.sha256(data).hexdigest(), **metadata}
        self._write(self._meta(bucket, key), json.dumps(meta, sort_keys=True).encode())
        self._write(self._path(bucket, key), data)

    def content_sha256(self, bucket: str, key: str) -> str | None:
        path = self._path(bucket, key)
        return sha256_file(path) if path.is_file() else None

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        dst = self._path(dst_bucket, dst_key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        meta_src, meta_dst = self._meta(src_bucket, src_key), self._meta(dst_bucket, dst_key)
        if meta_src.is_file():
            self._write(meta_dst, meta_src.read_bytes())
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        shutil.copyfile(self._path(src_bucket, src_key), tmp)
        os.replace(tmp, dst)

    def delete(self, bucket: str, key: str) -> None:
        for path in (self._path(bucket, key), self._meta(bucket, key)):
            path.unlink(missing_ok=True)

    def url(self, bucket: str, key: str) -> str:
        return (self.root / bucket).as_uri() + "/" + key


_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                    "ServiceUnavailable", "RequestTimeTooSkewed"}


class S3ObjectStore:
    def __init__(self, *, endpoint_url: str, region: str, path_style: bool, client: Any = None) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region, config=Config(
                s3={"addressing_style": "path" if path_style else "virtual"},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=10, read_timeout=60,
                request_checksum_calculation="when_required", response_checksum_validation="when_required"))
        self.client = client

    @staticmethod
    def _classify(what: str, exc: Exception) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status >= 500 or code in _TRANSIENT_CODES:
                return TransientUploadError(f"S3 {what} failed: {code or status}")
            return PermanentUploadError("s3_refused", f"S3 {what} refused: {code or status}")
        return TransientUploadError(f"S3 {what} failed: {exc.__class__.__name__}")

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._classify(what, exc) from exc

    @staticmethod
    def _missing(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in (
            "404", "NoSuchKey", "NotFound")

    def head(self, bucket: str, key: str) -> dict[str, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.client.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            if self._missing(exc):
                return None
            raise self._classify("head", exc) from exc
        return dict(resp.get("Metadata") or {})

    def put_file(self, bucket: str, key: str, path: Path, sha256: str, metadata: dict[str, str]) -> None:
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        with path.open("rb") as body:
            self._call("put", self.client.put_object, Bucket=bucket, Key=key, Body=body, ChecksumSHA256=checksum,
                       Metadata={**metadata, "sha256": sha256})

    def put_bytes(self, bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> None:
        digest = hashlib.sha256(data)
        self._call("put", self.client.put_object, Bucket=bucket, Key=key, Body=data,
                   ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
                   Metadata={**metadata, "sha256": digest.hexdigest()}, ContentType="application/json")

    def content_sha256(self, bucket: str, key: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.client.get_object(Bucket=bucket, Key=key)
            h = hashlib.sha256()
            for chunk in resp["Body"].iter_chunks(1 << 20):
                h.update(chunk)
        except (ClientError, BotoCoreError) as exc:
            if self._missing(exc):
                return None
            raise self._classify("get", exc) from exc
        return h.hexdigest()

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        self._call("copy", self.client.copy_object, Bucket=dst_bucket, Key=dst_key,
                   CopySource={"Bucket": src_bucket, "Key": src_key}, MetadataDirective="COPY")

    def delete(self, bucket: str, key: str) -> None:
        self._call("delete", self.client.delete_object, Bucket=bucket, Key=key)

    def url(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"
