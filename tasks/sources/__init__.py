"""Source kinds: what a scan may read (``source_type``), each with its request fields, its check at
submit and its fetcher in the worker. ``base`` says what a kind is, ``registry`` which kinds the
service offers; one module per kind (``git``, ``directory``, ``archive``)."""

from tasks.sources.base import (
    CheckContext,
    FieldInvalid,
    SourceField,
    SourceKind,
    SourceRefused,
)
from tasks.sources.registry import (
    DEFAULT,
    check,
    generation,
    get,
    kinds,
    names,
    owners,
    record_fields,
    register,
    source_fields,
    unregister,
    values_of,
)

__all__ = ["DEFAULT", "CheckContext", "FieldInvalid", "SourceField", "SourceKind", "SourceRefused", "check",
           "generation", "get", "kinds", "names", "owners", "record_fields", "register", "source_fields",
           "unregister", "values_of"]
