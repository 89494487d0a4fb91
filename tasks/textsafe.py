"""Text from outside, shown on one line: every character that is not plain visible text becomes a
visible escape (``\\x1b``, ``\\x9b``, ``\\n``, ``\\u202e``).

The rule is Unicode's own: control characters (Cc: C0, DEL and C1), format characters (Cf: the
bidirectional overrides and isolates, zero-width characters, U+061C ...), lone surrogates (Cs) and
the line and paragraph separators (Zl, Zp). Escaping the ESC and CSI characters disarms every
terminal escape sequence, since what follows them is plain text. So nothing a scanned repository, a
request path or a client sends can clear a screen, move a cursor, reorder what is shown or start a
forged line in a log, and an operator reading the escape sees that someone tried.

The CLI uses this module itself (it depends on the standard library only, so the CLI may import
it: ``tests/unit/test_cli_layering.py``), and the web page (``app/static/app.js``) applies the same
categories; a test checks the page's list.
"""

from __future__ import annotations

import unicodedata

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# What a request field holding such a character is told.
HIDDEN_MESSAGE = "must not contain control, format or bidirectional characters"


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
