"""Identifiers minted by the service."""

import re
import secrets

TEST_ID_RE = re.compile(r"^test_[0-9a-f]{12}\Z")


def new_test_id() -> str:
    return "test_" + secrets.token_hex(6)


def is_test_id(value: str) -> bool:
    return bool(TEST_ID_RE.match(value))
