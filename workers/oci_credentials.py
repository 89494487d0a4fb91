"""Which hosts a registry's credentials may be sent to.

Credentials belong to the registries they were configured for. A registry answers ``401`` with a
challenge that names any token service (realm) it likes, so a registry named in a manifest URI —
one the submitter controls, or a listed one that was compromised — could otherwise collect them.
So credentials go:

* to a registry only when it is one they were configured for (``registry_listed``);
* to a token realm only when that registry's challenge names it, and the realm is the registry's
  own host and port or a host the operator listed; over plain HTTP only when the registry itself
  is configured plain-HTTP and the realm is on the same host (``realm_refusal``).

Host names compare case-insensitively and a missing port means the scheme's default one.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def authority(netloc: str, scheme: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host[:port]``; None when it is not one (user info, a path, a bad port)."""
    try:
        parts = urlsplit(f"//{netloc.strip()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _listed(target: tuple[str, int], scheme: str, hosts: Iterable[str]) -> bool:
    return any(authority(h, scheme) == target for h in hosts)


def registry_listed(registry: str, plain_http: bool, hosts: Iterable[str]) -> bool:
    """Whether ``registry`` (``host[:port]``) is one of ``hosts``, the registries credentials belong to."""
    scheme = "http" if plain_http else "https"
    target = authority(registry, scheme)
    return target is not None and _listed(target, scheme, hosts)


def realm_refusal(realm: str, registry: str, plain_http: bool, listed_realms: Iterable[str]) -> str | None:
    """Why the token realm ``realm`` (a URL from the registry's challenge) may not receive the
    registry's credentials, or None when it may."""
    try:
        parts = urlsplit(realm)
    except ValueError:
        return "the registry's token realm is not a URL"
    if parts.scheme not in _DEFAULT_PORTS or parts.username is not None or parts.password is not None:
        return "the registry's token realm is not a plain http(s) URL"
    target = authority(parts.netloc, parts.scheme)
    own = authority(registry, "http" if plain_http else "https")
    if target is None or own is None:
        return "the registry's token realm is not a URL"
    if target != own and not _listed(target, parts.scheme, listed_realms):
        return "the registry's token realm is on another host, not one listed for its credentials"
    if parts.scheme == "http" and not (plain_http and target[0] == own[0]):
        return ("the registry's token realm is plain HTTP; credentials go over HTTP only to a realm on the host "
                "of a registry configured for plain HTTP")
    return None
