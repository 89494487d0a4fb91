"""``workers.oci_client``: the one OCI distribution client pulls and pushes share, against loopback
servers that record every request and its ``Authorization`` header.

Each refusal is asserted together with the server that would have been reached: it saw nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stack.ports import free_port
from tests.support.manifest_servers import RecordingServer, challenging, start_recorder, token_service
from tests.support.tlscerts import TLSFiles, make_tls_files
from workers import oci_client
from workers.oci_client import DistributionClient, RegistryError

USER, PASSWORD = "pusher", "push-secret-31c9"  # noqa: S105
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BLOB = b"layer bytes"
BLOB_DIGEST = oci_client.sha256_digest(BLOB)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def servers() -> Iterator[list[RecordingServer]]:
    started: list[RecordingServer] = []
    yield started
    for server in started:
        server.stop()


def _start(servers: list[RecordingServer], answer, tls: TLSFiles | None = None) -> RecordingServer:
    server = start_recorder(answer, tls)
    servers.append(server)
    return server


def _client(registry: RecordingServer, tls: TLSFiles | None = None, *, credentials: bool = True,
            **kw) -> DistributionClient:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(tls.ca) if tls else True
    return DistributionClient(registry.host, "certus/scans", session=session, plain_http=tls is None,
                              credentials=(USER, PASSWORD) if credentials else None, timeout=10, **kw)


def _reason(call) -> str:
    with pytest.raises(RegistryError) as err:
        call()
    assert PASSWORD not in err.value.message
    return err.value.reason


def _http_url(server: RecordingServer) -> str:
    return server.url.replace("https://", "http://")


# -- token realms ---------------------------------------------------------------------------------
def test_a_realm_downgraded_to_plain_http_is_never_contacted(servers, tls):
    realm = _start(servers, token_service)  # plain HTTP
    registry = _start(servers, challenging(f'Bearer realm="{realm.url}/token",service="r"'), tls)
    listed = (realm.host,)
    assert _reason(lambda: _client(registry, tls, token_realms=listed).get_manifest("v1")) == \
        oci_client.REALM_NOT_ALLOWED
    # Nor for an anonymous token: the registry is HTTPS, so its realm must be too.
    assert _reason(lambda: _client(registry, tls, credentials=False, anonymous_tokens=True).get_manifest("v1")) == \
        oci_client.REALM_UNUSABLE
    assert realm.seen == []


def test_a_realm_on_a_host_the_credentials_are_not_bound_to_gets_none(servers, tls):
    realm = _start(servers, token_service, tls)
    registry = _start(servers, challenging(f'Bearer realm="{realm.url}/token",service="r"'), tls)
    assert _reason(lambda: _client(registry, tls).has_blob(BLOB_DIGEST)) == oci_client.REALM_NOT_ALLOWED
    assert realm.seen == []
    # Listed by the operator: the credentials go there, and only Basic to the realm.
    assert _reason(lambda: _client(registry, tls, token_realms=(realm.host,)).has_blob(BLOB_DIGEST)) == \
        oci_client.AUTH_FAILED  # the recorder keeps answering 401 to the token it handed out
    assert realm.authorizations == [BASIC]
    assert registry.authorizations == ["Bearer handed-out"]


def test_an_anonymous_token_is_asked_for_without_credentials(servers, tls):
    realm = _start(servers, token_service, tls)
    registry = _start(servers, challenging(f'Bearer realm="{realm.url}/token",service="r",scope="repository:x:pull"'),
                      tls)
    assert _reason(lambda: _client(registry, tls, credentials=False).get_manifest("v1")) == oci_client.AUTH_REQUIRED
    assert realm.seen == []  # a push client (no anonymous tokens) does not even ask
    assert _reason(lambda: _client(registry, tls, credentials=False, anonymous_tokens=True).get_manifest("v1")) == \
        oci_client.AUTH_REQUIRED
    assert [s.path for s in realm.seen] == ["/token?scope=repository%3Ax%3Apull&service=r"]
    assert realm.authorizations == []


def test_a_token_service_without_a_token_fails(servers):
    realm = _start(servers, lambda method, path: (200, {}, b'{"expires_in": 60}'))
    registry = _start(servers, challenging(f'Bearer realm="{realm.url}/token"'))
    assert _reason(lambda: _client(registry, token_realms=(realm.host,)).get_manifest("v1")) == \
        oci_client.AUTH_FAILED


def test_unsupported_challenges(servers):
    registry = _start(servers, challenging('Negotiate realm="x"'))
    assert _reason(lambda: _client(registry).get_manifest("v1")) == oci_client.AUTH_UNSUPPORTED
    ftp = _start(servers, challenging('Bearer realm="ftp://127.0.0.1/token"'))
    assert _reason(lambda: _client(ftp).get_manifest("v1")) == oci_client.REALM_UNUSABLE


# -- credentials stay with the registry -----------------------------------------------------------
def test_basic_credentials_are_sent_to_the_registry_origin_only(servers):
    other = _start(servers, lambda method, path: (200, {}, BLOB))

    def registry_answer(method: str, path: str):
        if len(registry.seen) == 1:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        return 307, {"Location": f"{other.url}/storage/blob"}, b""

    registry = _start(servers, registry_answer)
    assert _client(registry).get_blob(BLOB_DIGEST, 1024) == BLOB
    assert registry.authorizations == [BASIC]
    assert [s.path for s in other.seen] == ["/storage/blob"] and other.authorizations == []


def test_credentials_bound_to_no_registry_are_never_sent(servers):
    registry = _start(servers, challenging('Basic realm="registry"'))
    assert _reason(lambda: _client(registry, credentials=False).get_manifest("v1")) == oci_client.AUTH_REQUIRED
    assert registry.authorizations == []
    assert _reason(lambda: _client(registry).get_manifest("v1")) == oci_client.AUTH_FAILED
    assert registry.authorizations == [BASIC]


# -- no way from https to http --------------------------------------------------------------------
def test_a_redirect_from_https_to_http_is_refused(servers, tls):
    plain = _start(servers, lambda method, path: (200, {}, BLOB))
    registry = _start(servers, lambda method, path: (302, {"Location": f"{plain.url}/blob"}, b""), tls)
    assert _reason(lambda: _client(registry, tls).get_blob(BLOB_DIGEST, 1024)) == oci_client.DOWNGRADE
    assert plain.seen == []


def test_an_upload_location_on_plain_http_is_refused(servers, tls):
    plain = _start(servers, lambda method, path: (201, {}, b""))

    def registry_answer(method: str, path: str):
        if method == "HEAD":
            return 404, {}, b""
        return 202, {"Location": f"{plain.url}/upload/1"}, b""

    registry = _start(servers, registry_answer, tls)
    assert _reason(lambda: _client(registry, tls).put_blob(BLOB)) == oci_client.DOWNGRADE
    assert plain.seen == []


def test_a_plain_http_registry_may_redirect_within_http(servers):
    other = _start(servers, lambda method, path: (200, {}, BLOB))
    registry = _start(servers, lambda method, path: (302, {"Location": f"{other.url}/blob"}, b""))
    assert _client(registry).get_blob(BLOB_DIGEST, 1024) == BLOB


# -- what comes back ------------------------------------------------------------------------------
def test_a_blob_with_another_digest_is_refused(servers):
    registry = _start(servers, lambda method, path: (200, {}, b"something else"))
    assert _reason(lambda: _client(registry).get_blob(BLOB_DIGEST, 1024)) == oci_client.DIGEST_MISMATCH


def test_a_body_over_its_limit_is_refused(servers):
    registry = _start(servers, lambda method, path: (200, {}, BLOB))
    assert _reason(lambda: _client(registry).get_blob(BLOB_DIGEST, len(BLOB) - 1)) == oci_client.TOO_LARGE


def test_statuses_and_an_unreachable_registry(servers):
    registry = _start(servers, lambda method, path: (503, {}, b"busy"))
    with pytest.raises(RegistryError) as err:
        _client(registry).put_blob(BLOB)
    assert err.value.reason == oci_client.STATUS and err.value.status == 503
    missing = _start(servers, lambda method, path: (404, {}, b""))
    assert _client(missing).get_manifest("v1") is None and _client(missing).get_blob(BLOB_DIGEST, 10) is None
    session = requests.Session()
    down = DistributionClient(f"127.0.0.1:{free_port()}", "certus/scans", session=session, plain_http=True)
    assert _reason(lambda: down.get_manifest("v1")) == oci_client.UNREACHABLE


def test_tls_failure_is_its_own_reason(servers, tls, tmp_path: Path):
    registry = _start(servers, lambda method, path: (200, {}, b"{}"), tls)
    other_ca = make_tls_files(tmp_path / "other")
    assert _reason(lambda: _client(registry, other_ca).get_manifest("v1")) == oci_client.TLS
    assert registry.seen == []


def test_the_sessions_ca_wins_over_the_environment(servers, tls, tmp_path: Path, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE replace a session's own CA unless each request names it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(make_tls_files(tmp_path / "env").ca))
    registry = _start(servers, lambda method, path: (404, {}, b""), tls)
    session = requests.Session()
    session.verify = str(tls.ca)
    client = DistributionClient(registry.host, "certus/scans", session=session, timeout=10)
    assert client.get_manifest("v1") is None
