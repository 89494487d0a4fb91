"""Registry credentials go only to the registries they were configured for.

A manifest URI may name any registry, and a registry's 401 may name any token service (realm). Real
servers on loopback play a registry someone else runs (Basic, or Bearer with a realm on another
loopback port) and record every ``Authorization`` header they receive: none carries the credentials,
and the pull or push fails with a clear code. The configured registry (Debian's docker-registry with
htpasswd) still gets them and works.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.settings import Settings
from tests.support.manifest_servers import (
    RecordingServer,
    challenging,
    registry_binary,
    start_recorder,
    start_registry,
    token_service,
)
from tests.support.tlscerts import TLSFiles, make_tls_files
from workers.pipeline.manifest_sources import ManifestSourceError
from workers.pipeline.oci import pull_manifest
from workers.uploads.errors import PermanentUploadError, TransientUploadError
from workers.uploads.registry import RegistryClient

USER, PASSWORD = "puller", "pull-secret-7d1f"  # noqa: S105
MANIFEST = json.dumps({"profiles": [{"name": "team", "tools": ["bandit"]}]}).encode()


def _no_credentials(*servers: RecordingServer) -> None:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for server in servers:
        for header in server.authorizations:
            assert basic not in header and PASSWORD not in header, (server.url, header)
            assert not header.lower().startswith("basic"), (server.url, header)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def legit():
    """The registry the operator configured the credentials for (htpasswd basic auth)."""
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed: run scripts/system-deps.sh")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        reg = start_registry(Path(tmp) / "registry", auth=(USER, PASSWORD))
        reg.push_artifact("team/manifests", "v1", {"manifest.json": MANIFEST})
        try:
            yield reg
        finally:
            reg.stop()


def _pull_settings(legit_host: str, tls: TLSFiles, **kw) -> Settings:
    base = Settings(manifest_allowed_hosts=("127.0.0.1", "localhost"), manifest_ca_bundle=str(tls.ca),
                    manifest_oci_plain_http=(legit_host,), manifest_oci_username=USER,
                    manifest_oci_password=PASSWORD, manifest_oci_credential_hosts=(legit_host,))
    return replace(base, **kw)


def _pull_code(uri: str, settings: Settings) -> str:
    with pytest.raises(ManifestSourceError) as err:
        pull_manifest(uri, settings)
    assert PASSWORD not in err.value.message
    return err.value.code


# -- pulling manifests ----------------------------------------------------------------------------
def test_a_registry_asking_basic_auth_gets_no_credentials(legit, tls):
    hostile = start_recorder(challenging('Basic realm="give me your password"'), tls)
    try:
        code = _pull_code(f"oci://{hostile.host}/team/manifests:v1", _pull_settings(legit.host, tls))
        assert hostile.seen, "the registry was asked (anonymously)"
        assert hostile.authorizations == []
        assert code == "manifest_auth_required"
    finally:
        hostile.stop()


def test_a_registry_naming_its_own_token_realm_gets_no_credentials(legit, tls):
    realm = start_recorder(token_service, tls)
    hostile = start_recorder(challenging(f'Bearer realm="{realm.url}/token",service="x",scope="repository:a:pull"'),
                             tls)
    try:
        code = _pull_code(f"oci://{hostile.host}/team/manifests:v1", _pull_settings(legit.host, tls))
        # The realm was asked for an anonymous token, with no Authorization at all.
        assert [s.path.split("?")[0] for s in realm.seen] == ["/token"]
        assert realm.authorizations == []
        _no_credentials(hostile, realm)
        assert code == "manifest_auth_required"
    finally:
        hostile.stop()
        realm.stop()


def test_a_credentialed_registry_cannot_send_them_to_a_realm_elsewhere(tls):
    # Even a registry the credentials belong to (say, one taken over) cannot name another token
    # service and collect them there: the realm is never contacted.
    realm = start_recorder(token_service, tls)
    registry = start_recorder(challenging(f'Bearer realm="{realm.url}/token",service="x"'), tls)
    try:
        settings = _pull_settings(registry.host, tls, manifest_oci_plain_http=())
        code = _pull_code(f"oci://{registry.host}/team/manifests:v1", settings)
        assert realm.seen == []
        _no_credentials(registry)
        assert code == "manifest_token_realm_not_allowed"
        # Nor over plain HTTP, even when the realm is listed: the registry itself is HTTPS.
        plain = f"http://127.0.0.1:{realm.host.rsplit(':', 1)[1]}"
        other = start_recorder(challenging(f'Bearer realm="{plain}/token",service="x"'), tls)
        try:
            listed = replace(settings, manifest_oci_credential_hosts=(other.host,),
                             manifest_oci_token_realms=(realm.host,))
            assert _pull_code(f"oci://{other.host}/team/manifests:v1", listed) == "manifest_token_realm_not_allowed"
            assert realm.seen == []
        finally:
            other.stop()
    finally:
        registry.stop()
        realm.stop()


def test_the_configured_registry_still_gets_them_and_only_it(legit, tls):
    settings = _pull_settings(legit.host, tls)
    assert pull_manifest(f"oci://{legit.host}/team/manifests:v1", settings).manifest == MANIFEST
    # The same registry while the credentials are bound to another: they are not sent to it.
    assert _pull_code(f"oci://{legit.host}/team/manifests:v1",
                      replace(settings, manifest_oci_credential_hosts=("registry.example.com",))) == \
        "manifest_auth_required"


# -- pushing bundles --------------------------------------------------------------------------------
def _client(registry: RecordingServer, **kw) -> RegistryClient:
    return RegistryClient(registry.host, "certus/scans", plain_http=True, username=USER, password=PASSWORD,
                          timeout=10, **kw)


def test_push_never_sends_credentials_to_a_token_realm_elsewhere():
    realm = start_recorder(token_service)
    registry = start_recorder(challenging(f'Bearer realm="{realm.url}/token",service="x"'))
    try:
        with pytest.raises(PermanentUploadError) as err:
            _client(registry).put_blob(b"layer")
        assert realm.seen == []
        assert err.value.code == "registry_token_realm_not_allowed"
        # Listed by another name for the same loopback: plain HTTP goes only to the registry's own host.
        port = realm.host.rsplit(":", 1)[1]
        elsewhere = start_recorder(challenging(f'Bearer realm="http://localhost:{port}/token"'))
        try:
            with pytest.raises(PermanentUploadError) as err:
                _client(elsewhere, token_realms=(f"localhost:{port}",)).put_blob(b"layer")
            assert err.value.code == "registry_token_realm_not_allowed"
            assert realm.seen == []
        finally:
            elsewhere.stop()
        # A realm the operator listed, on the plain-HTTP registry's own host, does get them.
        with pytest.raises(PermanentUploadError) as err:
            _client(registry, token_realms=(realm.host,)).put_blob(b"layer")
        assert err.value.code == "registry_auth_failed"  # the recorder never accepts the token
        assert realm.authorizations == ["Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
    finally:
        registry.stop()
        realm.stop()


def test_push_keeps_basic_credentials_on_the_registry_origin():
    # The registry's upload location names another host: the blob goes there without credentials.
    other = start_recorder(lambda method, path: (500, {}, b""))
    asked: list[str] = []

    def registry_answer(method: str, path: str):
        asked.append(method)
        if len(asked) == 1:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        if method == "HEAD":
            return 404, {}, b""
        return 202, {"Location": f"{other.url}/upload/1"}, b""

    registry = start_recorder(registry_answer)
    try:
        with pytest.raises(TransientUploadError):
            _client(registry).put_blob(b"layer")
        assert [s.method for s in other.seen] == ["PUT"]
        assert other.authorizations == []
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert registry.authorizations == [basic, basic]  # the registry itself: HEAD again, then POST
    finally:
        registry.stop()
        other.stop()


def test_push_to_the_configured_registry_with_htpasswd(tmp_path):
    if registry_binary() is None:
        pytest.skip("docker-registry is not installed: run scripts/system-deps.sh")
    reg = start_registry(tmp_path / "push-registry", auth=(USER, PASSWORD))
    try:
        client = RegistryClient(reg.host, "certus/scans", plain_http=True, username=USER, password=PASSWORD)
        digest = client.put_blob(b"layer")
        assert digest.startswith("sha256:")
    finally:
        reg.stop()


# -- no way from https to plain http --------------------------------------------------------------
def test_a_pull_redirected_from_https_to_http_is_refused(tls):
    plain = start_recorder(lambda method, path: (200, {"Content-Type": "application/json"}, MANIFEST))
    registry = start_recorder(lambda method, path: (302, {"Location": f"{plain.url}{path}"}, b""), tls)
    try:
        settings = _pull_settings("registry.example.com", tls)
        assert _pull_code(f"oci://{registry.host}/team/manifests:v1", settings) == "manifest_uri_not_allowed"
        assert plain.seen == []
    finally:
        registry.stop()
        plain.stop()


def test_a_push_never_follows_https_to_http(tls):
    plain = start_recorder(lambda method, path: (201, {}, b""))

    def registry_answer(method: str, path: str):
        if method == "GET":
            return 302, {"Location": f"{plain.url}{path}"}, b""
        if method == "HEAD":
            return 404, {}, b""
        return 202, {"Location": f"{plain.url}/upload/1"}, b""

    registry = start_recorder(registry_answer, tls)
    try:
        client = RegistryClient(registry.host, "certus/scans", username=USER, password=PASSWORD,
                                ca_bundle=str(tls.ca), timeout=10)
        for call in (lambda: client.get_manifest("sha256-abc.sig"), lambda: client.put_blob(b"layer")):
            with pytest.raises(PermanentUploadError) as err:
                call()
            assert err.value.code == "registry_refused" and "plain HTTP" in err.value.message
        assert plain.seen == []
    finally:
        registry.stop()
        plain.stop()
