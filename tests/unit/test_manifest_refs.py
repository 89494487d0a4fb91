"""Parsing of manifest references and the settings that guard manifest verification."""

from __future__ import annotations

import pytest

from tasks.settings import Settings, SettingsError
from workers.pipeline.manifest_sources import ManifestSourceError, sibling_signature_names
from workers.pipeline.oci import parse_reference


def test_oci_references() -> None:
    ref = parse_reference("oci://registry.example:5000/team/manifests:v1.2")
    assert (ref.registry, ref.repository, ref.reference) == ("registry.example:5000", "team/manifests", "v1.2")
    assert parse_reference("oci://r.example/a/b").reference == "latest"
    digest = "sha256:" + "ab" * 32
    assert parse_reference(f"oci://r.example/a@{digest}").reference == digest


@pytest.mark.parametrize("uri", [
    "oci://r.example/UPPER:tag", "oci://r.example/a@sha256:short", "oci://user:pw@r.example/a:b",
    "oci://r.example/a:-bad", "oci://r.example/../etc:x", "https://r.example/a:b", "oci:///a:b",
])
def test_bad_oci_references(uri: str) -> None:
    with pytest.raises(ManifestSourceError) as err:
        parse_reference(uri)
    assert err.value.code == "manifest_uri_invalid"


def test_signature_names_beside_a_manifest() -> None:
    assert sibling_signature_names("manifest.json") == ["manifest.sig", "manifest.json.sig"]
    assert sibling_signature_names("MANIFEST") == ["MANIFEST.sig"]


def test_required_verification_needs_a_key() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"CERTUS_ASSURANCE_MANIFEST_VERIFICATION_REQUIRED": "true"})
    ok = Settings.from_env({"CERTUS_ASSURANCE_MANIFEST_VERIFICATION_REQUIRED": "yes",
                            "CERTUS_ASSURANCE_MANIFEST_VERIFICATION_KEY_REF": "/etc/certus/manifest.pub",
                            "CERTUS_ASSURANCE_MANIFEST_OCI_PLAIN_HTTP": "127.0.0.1:5000, reg.local:80"})
    assert ok.manifest_verification_required and ok.manifest_oci_plain_http == ("127.0.0.1:5000", "reg.local:80")
    assert "hunter2" not in repr(Settings(manifest_oci_password="hunter2"))
