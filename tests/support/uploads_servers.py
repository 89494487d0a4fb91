"""Real servers on loopback for the upload tests: moto's S3, Debian's docker-registry, the
standalone Trust service (over TLS with a throwaway CA), and a fault-injecting S3 proxy."""

from __future__ import annotations

import datetime
import http.client
import http.server
import ipaddress
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stack import processes
from stack.ports import free_port, wait_port

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


# -- moto ------------------------------------------------------------------------------------------
class MotoS3:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self.server.start()
        wait_port("127.0.0.1", self.port, 30)
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self, url: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=url or self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
                            config=Config(s3={"addressing_style": "path"}))

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10)


# -- docker-registry -------------------------------------------------------------------------------
@dataclass
class Registry:
    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        self.port = free_port()
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = [
            "version: 0.1",
            "log:", "  level: warn",
            "storage:", "  filesystem:", f"    rootdirectory: {storage}", "  delete:", "    enabled: true",
            "http:", f"  addr: 127.0.0.1:{self.port}", f"  secret: {os.urandom(8).hex()}",
        ]
        if self.users:
            import bcrypt

            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text("".join(
                f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n" for u, p in self.users.items()))
            config += ["auth:", "  htpasswd:", "    realm: certus-test", f"    path: {htpasswd}"]
        (self.workdir / "config.yml").write_text("\n".join(config) + "\n")
        self.proc = processes.spawn([REGISTRY_BIN, "serve", str(self.workdir / "config.yml")], {},
                                    self.workdir / "registry.log")
        wait_port("127.0.0.1", self.port, 30)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, timeout=10)


# -- TLS for the Trust service ---------------------------------------------------------------------
def make_tls(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA); returns (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certus-trust-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class TrustServer:
    workdir: Path
    signer_keys: dict[str, Path]
    basic: str = ""
    verified: str = ""
    port: int = 0
    proc: Popen[bytes] | None = None
    cert: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> TrustServer:
        self.port = self.port or free_port()
        if self.cert is None:
            self.cert, self._key = make_tls(self.workdir / "tls")
        argv = [sys.executable, "-m", "trust_service", "--port", str(self.port), "--cert", str(self.cert),
                "--tls-key", str(self._key), "--key-dir", str(self.workdir / "keys")]
        for name, path in self.signer_keys.items():
            argv += ["--signer-key", f"{name}={path}"]
        if self.basic:
            argv += ["--basic", self.basic]
        if self.verified:
            argv += ["--verified", self.verified]
        self.proc = processes.spawn(argv, {}, self.workdir / "trust.log")
        wait_port("127.0.0.1", self.port, 30)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, timeout=10)
            self.proc = None


# -- an S3 proxy that can fail requests ------------------------------------------------------------
class FaultyProxy:
    """Forwards HTTP to ``upstream``; requests for which ``fail`` returns True get a 503."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.fail: Callable[[str, str], bool] = lambda method, path: False
        self.seen: list[tuple[str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.seen.append((self.command, self.path))
                if proxy.fail(self.command, self.path):
                    msg = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()


def wait_for(predicate: Callable[[], object], timeout: float = 120, interval: float = 0.3) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not reached")
