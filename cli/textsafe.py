"""What the CLI prints of the service's answers, made safe for a terminal.

A scan's log lines come from the scanned repository (a file name, a tool echoing it), so they may
hold terminal escape sequences, carriage returns or bidirectional overrides meant to clear the
screen or fake a "scan SUCCEEDED" line. Every field is printed through ``visible``: each control
character (Cc: C0, DEL and the 8-bit C1 codes), format character (Cf: U+202E, U+2066, U+200B ...),
lone surrogate (Cs) and line or paragraph separator (Zl, Zp) becomes a visible escape such as
``\\x1b``, ``\\x9b`` or ``\\u202e``. ``GuardedStream`` then lets through, of all control
characters, only the line ends and colour codes the CLI itself writes, in case a field was missed.

The same rule as the service's ``tasks/textsafe.py`` (a test checks they agree on every code
point); the CLI keeps its own copy because it installs without the service's packages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import TextIO

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_char(char: str) -> str:
    if char in SHORT_ESCAPES:
        return SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: object) -> str:
    """``value`` as one line of text with every unsafe character escaped."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case: isprintable() is False for every unsafe category
        return text
    return "".join(escape_char(c) if unicodedata.category(c) in UNSAFE_CATEGORIES else c for c in text)


class GuardedStream:
    """A text stream that writes line ends and the given escape sequences (the CLI's own colours)
    as they are, and everything else through ``visible``."""

    def __init__(self, raw: TextIO, allowed: Iterable[str] = ()) -> None:
        self.raw = raw
        kept = sorted({"\n", *allowed}, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(s) for s in kept) + ")")

    def write(self, text: str) -> int:
        parts = self._split.split(text)
        # split() with one group alternates: text, kept sequence, text, ...
        self.raw.write("".join(p if i % 2 else visible(p) for i, p in enumerate(parts)))
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()

    def fileno(self) -> int:
        return self.raw.fileno()

    @property
    def encoding(self) -> str:
        return self.raw.encoding
