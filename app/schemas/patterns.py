"""Validators shared by the schemas: a pattern that checks the whole value, and text that shows as
itself."""

from __future__ import annotations

import re
from typing import Any, cast

from marshmallow import ValidationError, validate

from tasks.textsafe import HIDDEN_MESSAGE, visible


class Whole(validate.Regexp):
    """Like ``validate.Regexp``, but the whole value must match: with ``re.match`` a pattern ending
    in ``$`` lets one trailing newline through. The pattern stays as written for the OpenAPI
    document (``$``, which JSON Schema's regular expressions understand)."""

    def __call__(self, value: Any) -> Any:
        pattern = cast("re.Pattern[str]", self.regex)
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def shown_as_is(value: Any) -> Any:
    """Refuse text holding a character that is not shown as itself (``tasks.textsafe``: control
    characters, C1 included, bidirectional and other format characters such as U+202E and U+200B,
    lone surrogates, line and paragraph separators): such a name reads as another one in a log, a
    terminal or the web page."""
    if isinstance(value, str) and visible(value) != value:
        raise ValidationError(HIDDEN_MESSAGE)
    return value
