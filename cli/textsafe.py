"""What the CLI prints of the service's answers, made safe for a terminal.

A scan's log lines come from the scanned repository (a file name, a tool echoing it), so they may
hold terminal escape sequences, carriage returns or bidirectional overrides meant to clear the
screen or fake a "scan SUCCEEDED" line. Every field is printed through ``visible``: each control
character (Cc: C0, DEL and the 8-bit C1 codes), format character (Cf: U+202E, U+2066, U+200B ...),
lone surrogate (Cs) and line or paragraph separator (Zl, Zp) becomes a visible escape such as
``\\x1b``, ``\\x9b`` or ``\\u202e``. ``GuardedStream`` then lets through, of all control
characters, only the line ends and colour codes the CLI itself writes, in case a field was missed.

The rule itself is ``tasks.textsafe`` (standard library only): the CLI, the service's logs and,
in JavaScript, the web page escape alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TextIO

from tasks.textsafe import UNSAFE_CATEGORIES, visible

__all__ = ["UNSAFE_CATEGORIES", "GuardedStream", "visible"]


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
