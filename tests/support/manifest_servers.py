"""Real servers on loopback for manifest sources: moto's S3 server, a TLS file server with its own
CA, and Debian's ``docker-registry`` (optionally with htpasswd basic auth)."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stack.ports import free_port, wait_port

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


# -- S3 (moto in HTTP server mode) --------------------------------------------------------------
@dataclass
class S3Server:
    url: str
    server: Any

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def stop(self) -> None:
        self.server.stop()


def start_s3() -> S3Server:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_port("127.0.0.1", port, 30)
    return S3Server(f"http://127.0.0.1:{port}", server)


# -- HTTPS with a throwaway CA --------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """(ca.pem, server cert, server key) for ``host``, written into ``directory``."""
    import ipaddress

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("certus test CA")).issuer_name(_name("certus test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


@dataclass
class HTTPSServer:
    url: str
    root: Path
    ca: Path
    httpd: http.server.ThreadingHTTPServer
    redirects: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_https(root: Path, tls_dir: Path) -> HTTPSServer:
    ca, cert, key = make_tls_files(tls_dir)
    redirects: dict[str, str] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path in redirects:
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return HTTPSServer(f"https://127.0.0.1:{port}", root, ca, httpd, redirects)


# -- docker-registry ------------------------------------------------------------------------------
@dataclass
class Registry:
    host: str  # host:port
    proc: subprocess.Popen[bytes]
    auth: tuple[str, str] | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    # A minimal OCI push over plain HTTP (distribution spec: monolithic upload, then the manifest).
    def _url(self, path: str) -> str:
        return f"http://{self.host}/v2/{path}"

    def push_blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(self._url(f"{repo}/blobs/uploads/"), auth=self.auth, timeout=30)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.host}{location}"
        sep = "&" if "?" in location else "?"
        done = requests.put(f"{location}{sep}digest={digest}", data=data, auth=self.auth, timeout=30,
                            headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(data)}

    def push_manifest(self, repo: str, ref: str, manifest: dict[str, Any], media_type: str) -> str:
        body = json.dumps(manifest).encode()
        resp = requests.put(self._url(f"{repo}/manifests/{ref}"), data=body, auth=self.auth, timeout=30,
                            headers={"Content-Type": media_type})
        assert resp.status_code == 201, resp.text
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def push_artifact(self, repo: str, tag: str, files: dict[str, bytes]) -> str:
        """An OCI artifact whose layers are the given files, titled by name (as oras pushes them)."""
        config = self.push_blob(repo, b"{}")
        layers = []
        for name, data in files.items():
            desc = self.push_blob(repo, data)
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" if name.endswith(".tar")
                           else "application/octet-stream", **desc,
                           "annotations": {"org.opencontainers.image.title": name}})
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": "application/vnd.certus.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", **config},
                    "layers": layers}
        return self.push_manifest(repo, tag, manifest, str(manifest["mediaType"]))

    def push_image(self, repo: str, tag: str, layer_tar_gz: bytes) -> str:
        """A docker v2 image with one gzipped tar layer (no titles: the files are found inside)."""
        config = self.push_blob(repo, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": []}}).encode())
        layer = self.push_blob(repo, layer_tar_gz)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
                    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", **layer}]}
        return self.push_manifest(repo, tag, manifest, str(manifest["mediaType"]))


def registry_binary() -> str | None:
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None)


# -- a token service for docker-registry's bearer auth (JWT ES256 with an x5c chain) -----------------
def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    url: str  # the realm
    service: str
    issuer: str
    rootcert: Path
    users: dict[str, str]
    httpd: http.server.ThreadingHTTPServer
    issued: list[dict[str, Any]] = field(default_factory=list)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_token_server(directory: Path, users: dict[str, str]) -> TokenServer:
    """Issues pull tokens to the given users (basic auth), as a registry's token realm does."""
    import base64
    import time
    import uuid
    from urllib.parse import parse_qs, urlsplit

    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("certus test token issuer"))
            .issuer_name(_name("certus test token issuer")).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    rootcert = directory / "token-root.pem"
    rootcert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    service, issuer = "certus-test-registry", "certus-test-issuer"
    issued: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = parse_qs(urlsplit(self.path).query)
            auth = self.headers.get("Authorization", "")
            user = None
            if auth.startswith("Basic "):
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if users.get(name) != password:
                    self.send_response(401)
                    self.end_headers()
                    return
                user = name
            access = []
            for scope in query.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                # Anonymous callers get nothing; named users get pull.
                granted = [a for a in actions.split(",") if a == "pull" and user]
                access.append({"type": kind, "name": name, "actions": granted})
            t = int(time.time())
            claims = {"iss": issuer, "sub": user or "", "aud": query.get("service", [""])[0], "exp": t + 300,
                      "nbf": t - 10, "iat": t, "jti": uuid.uuid4().hex, "access": access}
            header = {"typ": "JWT", "alg": "ES256", "x5c": x5c}
            signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
            r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
            token = f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
            issued.append({"user": user, "access": access})
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return TokenServer(f"http://127.0.0.1:{port}/token", service, issuer, rootcert, users, httpd, issued)


def start_registry(workdir: Path, auth: tuple[str, str] | None = None, token: TokenServer | None = None,
                   port: int | None = None) -> Registry:
    binary = registry_binary()
    if binary is None:
        raise RuntimeError("docker-registry is not installed (scripts/system-deps.sh installs it)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
             f"    rootdirectory: {workdir / 'data'}", "  delete:", "    enabled: true",
             "http:", f"  addr: 127.0.0.1:{port}", f"  secret: test-{port}"]
    if auth is not None:
        htpasswd = subprocess.run(["htpasswd", "-nbB", auth[0], auth[1]], check=True, capture_output=True,
                                  text=True).stdout.strip()
        (workdir / "htpasswd").write_text(htpasswd + "\n")
        lines += ["auth:", "  htpasswd:", "    realm: certus-test", f"    path: {workdir / 'htpasswd'}"]
    elif token is not None:
        lines += ["auth:", "  token:", f"    realm: {token.url}", f"    service: {token.service}",
                  f"    issuer: {token.issuer}", f"    rootcertbundle: {token.rootcert}"]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = open(workdir / "registry.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(workdir)})
    try:
        wait_port("127.0.0.1", port, 30)
    except TimeoutError:
        proc.kill()
        raise
    return Registry(f"127.0.0.1:{port}", proc, auth)


# -- a server that records what it is sent (a registry or token service someone else runs) -------
@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    host: str | None


@dataclass
class RecordingServer:
    """Answers every request with ``answer(method, path)`` -> (status, headers, body) and records the
    request's method, path, ``Authorization`` and ``Host`` headers."""

    url: str  # scheme://127.0.0.1:port
    httpd: http.server.ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.url.split("/")[2]

    @property
    def authorizations(self) -> list[str]:
        return [s.authorization for s in self.seen if s.authorization is not None]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


Answer = tuple[int, dict[str, str], bytes]


def start_recorder(answer: Any, tls: Any = None) -> RecordingServer:
    """``tls``: a ``tests.support.tlscerts.TLSFiles`` to serve HTTPS with; plain HTTP otherwise."""
    seen: list[Seen] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append(Seen(self.command, self.path, self.headers.get("Authorization"), self.headers.get("Host")))
            status, headers, body = answer(self.command, self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    scheme = "http"
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return RecordingServer(f"{scheme}://127.0.0.1:{httpd.server_address[1]}", httpd, seen)


def challenging(challenge: str) -> Any:
    """A registry that answers every request 401 with ``challenge``."""
    def answer(method: str, path: str) -> Answer:
        return 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, b'{"errors": []}'
    return answer


def token_service(method: str, path: str) -> Answer:
    """A token realm that hands a token to anyone who asks."""
    return 200, {"Content-Type": "application/json"}, b'{"token": "handed-out", "access_token": "handed-out"}'
