"""DNS rebinding against manifest downloads: the name is looked up once, by the network policy, and
the connection goes to the very address that was checked.

The resolver is replaced for one made-up name: a public address when the policy asks, loopback
after that. Nothing leaves loopback: every ``connect`` to another address is refused by the test
before a packet is sent (and recorded), and a listener on loopback records whether the second
answer was used. A real TLS server on loopback shows that ordinary downloads still work, with
SNI, the Host header and certificate verification all on the host name.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket

import pytest

from tasks.settings import Settings
from tests.support.manifest_servers import start_recorder
from tests.support.recorder import recording_listener
from tests.support.tlscerts import TLSFiles, make_tls_files
from workers.pipeline.manifest_sources import ManifestSourceError, get_bytes
from workers.pipeline.oci import pull_manifest

NAME = "manifests.rebind.test"
PUBLIC = "93.184.215.14"  # public, so the policy lets it through; never actually reached (see below)
MANIFEST = json.dumps({"profiles": [{"name": "team", "tools": ["bandit"]}]}).encode()


@pytest.fixture()
def off_loopback(monkeypatch) -> list[tuple[str, int]]:
    """Every connection attempt to an address outside loopback, refused before it is made."""
    attempts: list[tuple[str, int]] = []
    real = socket.socket.connect

    def connect(sock: socket.socket, address) -> None:
        if not ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback:
            attempts.append((address[0], address[1]))
            raise ConnectionRefusedError(errno.ECONNREFUSED, "tests stay on loopback")
        real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def _resolver(monkeypatch, answers: dict[str, list[str]]) -> list[tuple[str, str]]:
    """``getaddrinfo`` answering the listed names from ``answers`` (one answer per lookup, the last
    repeating); every other name goes to the real resolver. Returns the (name, answer) log."""
    real = socket.getaddrinfo
    asked: list[tuple[str, str]] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in answers:
            return real(host, port, *args, **kwargs)
        given = sum(1 for n, _ in asked if n == name)
        address = answers[name][min(given, len(answers[name]) - 1)]
        asked.append((name, address))
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture()
def listener():
    """A loopback TCP port that records who connects (and hangs up)."""
    sock, seen = recording_listener()
    try:
        yield sock.getsockname()[1], seen
    finally:
        sock.close()


def test_https_download_connects_to_the_checked_address_not_a_second_answer(monkeypatch, off_loopback, listener):
    port, seen = listener
    asked = _resolver(monkeypatch, {NAME: [PUBLIC, "127.0.0.1"]})
    with pytest.raises(ManifestSourceError) as err:
        get_bytes(f"https://{NAME}:{port}/manifest.json", Settings(), "manifest")
    assert seen == [], "the second (loopback) answer was connected to"
    assert off_loopback == [(PUBLIC, port)]  # it went for the address the policy checked
    assert asked == [(NAME, PUBLIC)]  # and the name was looked up once
    assert err.value.code == "manifest_fetch_failed"


def test_oci_pull_connects_to_the_checked_address_not_a_second_answer(monkeypatch, off_loopback, listener):
    port, seen = listener
    _resolver(monkeypatch, {NAME: [PUBLIC, "127.0.0.1"]})
    with pytest.raises(ManifestSourceError) as err:
        pull_manifest(f"oci://{NAME}:{port}/team/manifest:v1", Settings())
    assert seen == []
    assert off_loopback == [(PUBLIC, port)]
    assert err.value.code == "manifest_fetch_failed"


def test_a_name_answering_loopback_first_is_refused_before_connecting(monkeypatch, off_loopback, listener):
    port, seen = listener
    _resolver(monkeypatch, {NAME: ["127.0.0.1"]})
    with pytest.raises(ManifestSourceError) as err:
        get_bytes(f"https://{NAME}:{port}/manifest.json", Settings(), "manifest")
    assert err.value.code == "manifest_uri_not_allowed"
    assert seen == [] and off_loopback == []


# -- ordinary downloads over TLS on loopback --------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def tls_server(tls: TLSFiles):
    def answer(method: str, path: str):
        if path == "/manifest.json":
            return 200, {"Content-Type": "application/json"}, MANIFEST
        if path == "/moved":
            return 302, {"Location": f"https://127.0.0.1:{server.host.rsplit(':', 1)[1]}/manifest.json"}, b""
        return 404, {}, b""

    server = start_recorder(answer, tls)
    names: list[str | None] = []
    server.httpd.socket.context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[union-attr]
    try:
        yield server, names
    finally:
        server.stop()


def test_an_https_download_still_works_with_sni_host_and_verification_on_the_name(tls, tls_server, off_loopback):
    server, names = tls_server
    port = server.host.rsplit(":", 1)[1]
    settings = Settings(manifest_allowed_hosts=("localhost",), manifest_ca_bundle=str(tls.ca))
    assert get_bytes(f"https://localhost:{port}/manifest.json", settings, "manifest") == MANIFEST
    assert names == ["localhost"]
    assert [s.host for s in server.seen] == [f"localhost:{port}"]
    assert off_loopback == []


def test_the_certificate_is_verified_against_the_name_not_the_pinned_address(monkeypatch, tls, tls_server):
    # The certificate names 127.0.0.1, the address connected to, but not the host in the URL.
    server, _ = tls_server
    port = server.host.rsplit(":", 1)[1]
    _resolver(monkeypatch, {"mirror.example.test": ["127.0.0.1"]})
    settings = Settings(manifest_allowed_hosts=("mirror.example.test",), manifest_ca_bundle=str(tls.ca))
    with pytest.raises(ManifestSourceError) as err:
        get_bytes(f"https://mirror.example.test:{port}/manifest.json", settings, "manifest")
    assert err.value.code == "manifest_tls_error"
    assert server.seen == []


def test_a_redirect_to_a_refused_host_is_stopped_before_it_connects(tls, tls_server):
    server, names = tls_server
    port = server.host.rsplit(":", 1)[1]
    settings = Settings(manifest_allowed_hosts=("localhost",), manifest_ca_bundle=str(tls.ca))
    with pytest.raises(ManifestSourceError) as err:
        get_bytes(f"https://localhost:{port}/moved", settings, "manifest")
    assert err.value.code == "manifest_uri_not_allowed"
    assert [s.path for s in server.seen] == ["/moved"]
    assert names == ["localhost"]  # one TLS handshake: the redirect's target was never contacted
