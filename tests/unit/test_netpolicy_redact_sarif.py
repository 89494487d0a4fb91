import pytest

from tasks.netpolicy import HostNotAllowed, check_host, check_url
from workers import sarif
from workers.redact import Redactor
from workers.scanners.base import Finding


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "::1",
                                  "172.16.5.4", "0.0.0.0", "::ffff:127.0.0.1", "fe80::1"])
def test_internal_addresses_are_refused_without_connecting(host):
    # literal addresses: resolution is local, no packet is sent
    with pytest.raises(HostNotAllowed) as exc:
        check_host(host, 443, [])
    assert exc.value.code == "git_host_not_allowed"


def test_address_literals_are_checked_without_a_lookup(monkeypatch):
    import socket

    def no_lookup(*args, **kwargs):
        raise AssertionError("an address literal was sent to the resolver")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    assert check_host("[::1]", 9418, ["::1"]) == ["::1"]
    assert check_host("8.8.8.8", 443, []) == ["8.8.8.8"]
    with pytest.raises(HostNotAllowed):
        check_host("10.0.0.1", 443, [])
    with pytest.raises(AssertionError):  # a name still goes through the resolver (and its policy)
        check_host("git.example.com", 443, [])


def test_listed_hosts_and_local_sources():
    assert check_host("127.0.0.1", 9418, ["127.0.0.1"]) == ["127.0.0.1"]
    with pytest.raises(HostNotAllowed) as exc:
        check_url("file:///srv/repo", [], allow_local=False)
    assert exc.value.code == "git_url_not_allowed"
    check_url("/srv/repo", [], allow_local=True)
    with pytest.raises(HostNotAllowed):
        check_url("git://localhost/repo", [], allow_local=False)


def test_redactor_masks_secrets_and_url_credentials():
    r = Redactor(["s3cr3t-token"])
    assert r.text("token=s3cr3t-token here") == "token=*** here"
    assert r.text("https://bob:pw@host/x") == "https://***@host/x"
    assert r.value({"a": ["s3cr3t-token", 1]}) == {"a": ["***", 1]}


def finding(line, snippet="subprocess.call(cmd, shell=True)", path="app.py"):
    return Finding(tool="bandit", rule_id="B602", message="shell", severity="high", path=path, line=line,
                   snippet=snippet)


def test_fingerprints_survive_moved_lines_and_separate_duplicates():
    a = sarif.fingerprints([finding(10)])
    b = sarif.fingerprints([finding(42)])
    assert a == b
    twice = sarif.fingerprints([finding(10), finding(20)])
    assert twice[0] != twice[1]
    assert sarif.fingerprints([finding(10, path="other.py")]) != a
    doc = sarif.build("bandit", "1.0", [finding(3), Finding(tool="bandit", rule_id="B105", message="pw",
                                                            severity="low", path="x.py", line=1)])
    results = doc["runs"][0]["results"]
    assert doc["version"] == "2.1.0"
    assert [r["level"] for r in results] == ["error", "note"]
    assert all(sarif.FINGERPRINT_KEY in r["partialFingerprints"] for r in results)
