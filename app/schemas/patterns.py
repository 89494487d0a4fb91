"""A pattern validator that checks the whole value."""

from __future__ import annotations

import re
from typing import Any, cast

from marshmallow import ValidationError, validate


class Whole(validate.Regexp):
    """Like ``validate.Regexp``, but the whole value must match: with ``re.match`` a pattern ending
    in ``$`` lets one trailing newline through. The pattern stays as written for the OpenAPI
    document (``$``, which JSON Schema's regular expressions understand)."""

    def __call__(self, value: Any) -> Any:
        pattern = cast("re.Pattern[str]", self.regex)
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value
