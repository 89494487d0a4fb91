"""Which network hosts a scan may reach: checked at submit and again by the worker before it
connects (DNS may answer differently the second time)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from tasks.errors import CodedError


class HostNotAllowed(CodedError, ValueError):
    """A host or URL the network policy does not allow."""


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def is_local_source(url: str) -> bool:
    return url.startswith("/") or urlsplit(url).scheme == "file"


def local_source_path(url: str) -> str:
    """The folder a local git source names, read as the clone reads it: a path as given, a
    ``file://`` URL's path part (not percent-decoded)."""
    return url if url.startswith("/") else urlsplit(url).path


def check_local_source(url: str, allow_local: bool, roots: Iterable[str]) -> str:
    """The real folder (every link on the way followed) a local git source names, refused unless
    local sources are allowed and that folder lies under one of ``roots`` (each resolved too), as
    for directory sources. No roots refuse every local source."""
    if not allow_local:
        raise HostNotAllowed("git_url_not_allowed",
                             "local git sources are disabled (CERTUS_ASSURANCE_ALLOW_LOCAL_SOURCES)")
    path = local_source_path(url)
    if path.startswith("/") and "\x00" not in path:
        real = os.path.realpath(path)
        for root in roots:
            base = os.path.realpath(root)
            if real == base or real.startswith(base.rstrip("/") + "/"):
                return real
    raise HostNotAllowed("path_not_allowed", "a local git source must lie inside a folder of "
                                             "CERTUS_ASSURANCE_ALLOWED_SOURCE_ROOTS")


def _literal(host: str) -> list[str]:
    """An IP address written as the host is its own answer: no lookup (which, under gevent, is a
    hop through a thread pool)."""
    try:
        return [str(ipaddress.ip_address(host.split("%", 1)[0]))]
    except ValueError:
        return []


def _resolve(host: str, port: int | None) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port or 0, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotAllowed("git_host_unresolvable", f"cannot resolve host {host!r}") from exc
    return sorted({str(info[4][0]) for info in infos})


def check_host(host: str, port: int | None, allowed_hosts: Iterable[str]) -> list[str]:
    """Resolve ``host`` and refuse it if any address is loopback, private, link-local or otherwise
    not public, unless the host is listed in ``allowed_hosts``. Returns the resolved addresses."""
    host = host.strip("[]").lower()
    allowed = {h.lower() for h in allowed_hosts}
    addresses = _literal(host) or _resolve(host, port)
    if host in allowed:
        return addresses
    for address in addresses:
        if _is_internal(address):
            raise HostNotAllowed("git_host_not_allowed",
                                 f"host {host!r} resolves to a non-public address; "
                                 "list it in CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS to allow it")
    return addresses


def check_url(url: str, allowed_hosts: Iterable[str], allow_local: bool) -> None:
    if is_local_source(url):
        if not allow_local:
            raise HostNotAllowed("git_url_not_allowed",
                                 "local git sources are disabled (CERTUS_ASSURANCE_ALLOW_LOCAL_SOURCES)")
        return
    parts = urlsplit(url)
    if not parts.hostname:
        raise HostNotAllowed("git_url_invalid", "the git URL names no host")
    check_host(parts.hostname, parts.port, allowed_hosts)


def guard_resolver(allowed_hosts: Iterable[str]) -> list[str]:
    """Make every later name lookup in this process refuse non-public addresses of hosts that
    are not listed. Installed by the clone process, so redirects and a second DNS answer (DNS
    rebinding) meet the same policy as the URL checked at submit: the check happens at the moment
    of connecting, for every connection."""
    allowed = {h.strip("[]").lower() for h in allowed_hosts}
    refused: list[str] = []  # hosts refused so far, so the caller can name the reason
    original = socket.getaddrinfo

    def checked(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        infos = original(host, port, *args, **kwargs)
        name = (host.decode() if isinstance(host, bytes) else str(host or "")).strip("[]").lower()
        if name in allowed:
            return infos
        for info in infos:
            if _is_internal(str(info[4][0])):
                refused.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: non-public address refused by policy")
        return infos

    socket.getaddrinfo = checked
    return refused
