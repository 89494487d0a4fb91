"""Syntax checks of a URL's parts, shared by the git source kind and the API's manifest URIs."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

from tasks.sources.base import FieldInvalid

# A DNS name or an IPv4 literal (IPv6 literals are checked with ipaddress); never a leading '-'.
_HOSTNAME = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?\Z")


def split_url(value: str) -> SplitResult:
    try:
        return urlsplit(value)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host
        raise FieldInvalid("not a valid URL") from exc


def check_netloc(parts: SplitResult, raw: str) -> None:
    netloc = parts.netloc
    if not netloc.isascii() or "%" in netloc or "\\" in raw:
        raise FieldInvalid("the host must be plain ASCII without escapes or backslashes")
    host = parts.hostname or ""
    if host.startswith("-"):
        raise FieldInvalid("the host must not begin with '-'")
    if netloc.rsplit("@", 1)[-1].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise FieldInvalid("not a valid IPv6 address") from exc
    elif not _HOSTNAME.match(host):
        raise FieldInvalid("not a valid host name")
    try:
        parts.port  # noqa: B018 - parsing raises on a port out of range
    except ValueError as exc:
        raise FieldInvalid("not a valid port") from exc
