"""What a source kind is: its request fields, its check at submit, and where the worker's fetch of
it lives.

A kind has two halves on either side of the layering rule: this one, shared by the API and the
worker (``tasks.sources``), and a fetcher in the worker (``workers/sources/``), named here by its
dotted path so the API never loads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tasks.api_keys import Principal
from tasks.errors import CodedError, ErrorCode
from tasks.settings import Settings
from tasks.textsafe import HIDDEN_MESSAGE, visible

KIND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")


class FieldInvalid(ValueError):
    """A request field's value breaks the field's own rule: the API answers 422 ``validation_error``
    with this message under the field's name."""


# A field's own check: the value, and the serving API's settings (None where there is no service,
# e.g. a schema loaded in a test). Raises FieldInvalid, or a CodedError for a refusal with a code of
# its own (the API answers 422 with that code).
FieldCheck = Callable[[str, Settings | None], None]


@dataclass(frozen=True)
class SourceField:
    """A request field of a source kind: a string, checked by the API's schema in this order:
    length, then ``pattern`` (the whole value must match), then ``check``."""

    name: str
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    check: FieldCheck | None = None
    # Applied to the value once it is valid (e.g. a commit sha in lower case).
    normalise: Callable[[str], str] | None = None


@dataclass(frozen=True)
class CheckContext:
    """What a kind's check at submit may consult: the service's settings, the scan's workspace and
    the caller (None: no caller, which may use nothing that belongs to a workspace)."""

    settings: Settings
    workspace_id: str
    principal: Principal | None


class SourceRefused(CodedError):
    """The service refuses the source a request names (a host, a path, an upload): 422 with
    ``code``, and ``detail`` under ``field`` in the answer's ``fields``."""

    def __init__(self, code: ErrorCode | str, message: str, *, field: str, detail: str | None = None) -> None:
        super().__init__(code, message)
        self.field = field
        self.detail = detail if detail is not None else message


class SourceKind(Protocol):
    """One kind of source a scan may read (``source_type``). A kind subclasses this protocol and
    is registered once (``tasks.sources.registry``)."""

    name: str
    fields: tuple[SourceField, ...]
    # "package.module:function" of the worker's fetcher: FetchContext -> FetchedSource
    # (workers/sources/base.py). Imported by the worker only.
    fetcher: str

    def check(self, values: Mapping[str, Any], ctx: CheckContext) -> None:
        """The service's own judgement of a valid request's source (``values``: this kind's fields
        the request gives), with the service's settings: raises SourceRefused. The worker judges
        again before it fetches anything."""


def shown_as_is(value: str) -> None:
    """Refuse text holding a character that is not shown as itself (``tasks.textsafe``)."""
    if visible(value) != value:
        raise FieldInvalid(HIDDEN_MESSAGE)


def inside_roots(path: str, roots: tuple[str, ...]) -> bool:
    """Whether an absolute server path lies inside one of ``roots`` once its links are followed."""
    if not path.startswith("/") or "\x00" in path:
        return False
    resolved = Path(path).resolve()
    return any(resolved == Path(root) or Path(root) in resolved.parents for root in roots)
