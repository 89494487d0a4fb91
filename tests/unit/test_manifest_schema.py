"""The manifest format as a JSON Schema (tasks/schemas/manifest.schema.json): what a standard
validator (as an editor or a CI job runs it) says of a manifest is what the service says — inline
at the API, fetched by a worker — with the few rules a schema cannot state listed and checked; the
served schema is the file; an editor finds an `$id`, titles, descriptions and the service's messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from flask import Flask

from tasks import manifest as manifests
from tasks.api_keys import KeyStore
from tasks.states import Severity
from tests.support.edge import BODY, auth, edge, make_app  # noqa: F401 - edge is a fixture
from workers.pipeline.manifest import validated_document

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "tasks" / "schemas" / "manifest.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
Edge = tuple[Callable[..., Flask], KeyStore, redis.Redis]


def _doc_examples() -> list[dict[str, Any]]:
    """Every manifest written as a JSON example in the docs (alone, or inline in a scan request)."""
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for block in re.findall(r"```json\n(.*?)```", page.read_text(), re.S):
            try:
                doc = json.loads(block)
            except ValueError:
                continue
            if isinstance(doc, dict) and "workspace_id" in doc and isinstance(doc.get("manifest"), dict):
                doc = doc["manifest"]
            if isinstance(doc, dict) and ("profiles" in doc or "bundle" in doc):
                found.append(doc)
    return found


DOCS = _doc_examples()
GOOD: list[Any] = [
    *DOCS,
    {}, {"profiles": []}, {"owners": []}, {"bundle": {}}, {"product": 3, "version": 1.5},
    {"profiles": [{"name": "Team", "tools": ["bandit", {"id": "semgrep", "config": {"rules": "p/ci"}},
                                             {"name": "ruff", "config": None}],
                   "thresholds": {"critical": 0, "info": 100}}]},
    {"profiles": [{"name": "x", "tools": [{"id": "a", "name": 3}]}]},  # `id` wins; `name` is not read
    {"bundle": {"runtimeCeilingMinutes": 1}}, {"bundle": {"runtimeCeilingMinutes": 1440}},
    {"manifest": {"profiles": [{"name": "wrapped", "tools": ["bandit"]}]}},  # as `cue export` writes it
    {"owners": ["o"] * 100, "profiles": [{"name": f"p{i}", "tools": ["bandit"] * 100} for i in range(50)]},
]
# (document, a path the service names, its message): the messages of the hand-written checks before.
A_TOOL = "a tool is a name or an object with `id`/`name`"
A_TOOL_OBJECT = "a tool object needs a non-empty `id` or `name`"
A_COUNT = "must be an integer >= 0"
BAD: list[tuple[Any, str, str]] = [
    ([], "$", "a manifest is a JSON object"),
    ("manifest", "$", "a manifest is a JSON object"),
    ({"product": None}, "product", "must be a string"),
    ({"version": {}}, "version", "must be a string"),
    ({"owners": "me"}, "owners", "must be a list of strings"),
    ({"owners": ["me", 1]}, "owners", "must be a list of strings"),
    ({"profiles": {}}, "profiles", "must be a list"),
    ({"profiles": [3]}, "profiles[0]", "must be an object"),
    ({"profiles": [{"tools": []}]}, "profiles[0].name", "required, a non-empty string"),
    ({"profiles": [{"name": " "}]}, "profiles[0].name", "required, a non-empty string"),
    ({"profiles": [{"name": 3}]}, "profiles[0].name", "required, a non-empty string"),
    ({"profiles": [{"name": "x", "tools": "bandit"}]}, "profiles[0].tools", "must be a list"),
    ({"profiles": [{"name": "x", "tools": [3]}]}, "profiles[0].tools[0]", A_TOOL),
    ({"profiles": [{"name": "x", "tools": [""]}]}, "profiles[0].tools[0]", A_TOOL),
    ({"profiles": [{"name": "x", "tools": [{}]}]}, "profiles[0].tools[0]", A_TOOL_OBJECT),
    ({"profiles": [{"name": "x", "tools": [{"id": " "}]}]}, "profiles[0].tools[0]", A_TOOL_OBJECT),
    ({"profiles": [{"name": "x", "tools": [{"id": 3, "name": "x"}]}]}, "profiles[0].tools[0]", A_TOOL_OBJECT),
    ({"profiles": [{"name": "x", "tools": [{"name": 3}]}]}, "profiles[0].tools[0]", A_TOOL_OBJECT),
    ({"profiles": [{"name": "x", "tools": [{"id": "a", "config": []}]}]}, "profiles[0].tools[0].config",
     "must be an object"),
    ({"profiles": [{"name": "x", "thresholds": []}]}, "profiles[0].thresholds", "must be an object"),
    ({"profiles": [{"name": "x", "thresholds": {"severe": 1}}]}, "profiles[0].thresholds.severe",
     "unknown severity; use one of critical, high, medium, low, info"),
    ({"profiles": [{"name": "x", "thresholds": {"high": -1}}]}, "profiles[0].thresholds.high", A_COUNT),
    ({"profiles": [{"name": "x", "thresholds": {"high": "1"}}]}, "profiles[0].thresholds.high", A_COUNT),
    ({"profiles": [{"name": "x", "thresholds": {"high": True}}]}, "profiles[0].thresholds.high", A_COUNT),
    ({"profiles": [{"name": "x", "thresholds": {"high": 1.5}}]}, "profiles[0].thresholds.high", A_COUNT),
    ({"bundle": 3}, "bundle", "must be an object"),
    ({"bundle": {"runtimeCeilingMinutes": 0}}, "bundle.runtimeCeilingMinutes", "must be an integer from 1 to 1440"),
    ({"bundle": {"runtimeCeilingMinutes": 1441}}, "bundle.runtimeCeilingMinutes", "must be an integer from 1 to 1440"),
    ({"bundle": {"runtimeCeilingMinutes": "15"}}, "bundle.runtimeCeilingMinutes", "must be an integer from 1 to 1440"),
    ({"bundle": {"runtimeCeilingMinutes": True}}, "bundle.runtimeCeilingMinutes", "must be an integer from 1 to 1440"),
    ({"manifest": {"profiles": 3}}, "profiles", "must be a list"),  # the wrapper's manifest is checked
    # Lists have limits: a longer one is refused before any entry of it is looked at.
    ({"owners": ["o"] * 101}, "owners", "must have at most 100 entries"),
    ({"profiles": [{"name": "p"}] * 51}, "profiles", "must have at most 50 entries"),
    ({"profiles": [{"name": "p", "tools": ["bandit"] * 101}]}, "profiles[0].tools", "must have at most 100 entries"),
]
# Fields outside the schema: refused in a fetched document (and by the schema), let through inline.
OUTSIDE: list[tuple[Any, str]] = [
    ({"products": "typo"}, "$"),
    ({"profiles": [{"name": "x", "tool": ["bandit"]}]}, "profiles[0]"),
    ({"profiles": [{"name": "x", "tools": [{"id": "a", "configs": {}}]}]}, "profiles[0].tools[0]"),
    ({"bundle": {"runtimeCeiling": 15}}, "bundle"),
    ({"manifest": {"manifest": {}}}, "$"),  # one wrapper only
]
# What the schema cannot state (its description names each): a standard validator takes these, the
# service refuses them.
BEYOND_THE_SCHEMA: list[tuple[Any, str, str]] = [
    ({"product": "shop\u202e"}, "product", manifests.HIDDEN),
    ({"owners": ["me\x85"]}, "owners", manifests.HIDDEN),
    ({"profiles": [{"name": "te\u200bam"}]}, "profiles[0].name", manifests.HIDDEN),
    ({"profiles": [{"name": "x", "tools": ["band\u2066it"]}]}, "profiles[0].tools[0]", manifests.HIDDEN),
    ({"bundle": {"runtimeCeilingMinutes": 15.0}}, "bundle.runtimeCeilingMinutes", "must be an integer from 1 to 1440"),
    ({"profiles": [{"name": "x", "tools": [{"id": "a", "config": {"x": json.loads("[" * 130 + "]" * 130)}}]}]},
     "$", "the manifest nests deeper than 128 levels"),
]


FETCHED_PATH = {"profiles[0].thresholds.severe": "profiles[0].thresholds"}


def _standard_validators() -> list[Callable[[Any], bool]]:
    """Off-the-shelf validators as a user runs them: python-jsonschema and, when installed, the
    independent jsonschema-rs."""
    checks = [jsonschema.Draft202012Validator(SCHEMA).is_valid]
    try:
        import jsonschema_rs
    except ImportError:
        return checks
    return [*checks, jsonschema_rs.Draft202012Validator(SCHEMA).is_valid]


STANDARD = _standard_validators()


def _fetched(doc: Any) -> dict[str, list[str]] | None:
    """What a worker says of ``doc`` fetched from a path or URI: None when accepted."""
    try:
        validated_document(json.dumps(doc).encode())
    except manifests.ManifestInvalid as exc:
        return exc.errors
    return None


def _inline(doc: Any, *, strict: bool = False) -> dict[str, list[str]] | None:
    try:
        manifests.parse(doc, strict=strict)
    except manifests.ManifestInvalid as exc:
        return exc.errors
    return None


# -- the schema as a document ------------------------------------------------------------------------
def test_the_schema_is_a_draft_2020_12_schema_an_editor_can_use() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] == "https://certus-assurance.dev/schemas/manifest.json"
    assert SCHEMA["title"] and SCHEMA["description"]
    for name, definition in SCHEMA["$defs"].items():
        assert definition.get("title"), name

    def fields(node: Any, where: str) -> None:
        """Every field an editor offers has a description (the conditions in if/then/else restate
        fields described beside them)."""
        if isinstance(node, list):
            for i, sub in enumerate(node):
                fields(sub, f"{where}[{i}]")
        if not isinstance(node, dict):
            return
        for prop, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{where}.{prop} has no description"
        for key, sub in node.items():
            if key not in ("if", "then", "else", "enum"):
                fields(sub, f"{where}.{key}")

    fields(SCHEMA["$defs"], "$defs")


def test_the_description_names_what_the_schema_cannot_say() -> None:
    text = SCHEMA["description"]
    for rule in ("control, format or bidirectional characters", "`15.0`",
                 f"deeper than {manifests.MAX_DEPTH} levels"):
        assert rule in text


def test_severities_and_limits_come_from_one_place() -> None:
    severity = SCHEMA["$defs"]["severity"]
    assert severity["enum"] == list(Severity)
    assert severity["errorMessage"] == "unknown severity; use one of " + ", ".join(Severity)
    assert manifests.MAX_RUNTIME_CEILING_MINUTES == 24 * 60
    assert manifests.SCHEMA == SCHEMA  # the service reads the file the package ships


# -- one verdict: the schema's, the API's and the worker's -------------------------------------------
def test_the_documented_examples_are_found() -> None:
    assert len(DOCS) >= 3


@pytest.mark.parametrize("doc", GOOD, ids=lambda d: json.dumps(d)[:60])
def test_a_manifest_the_schema_accepts_the_service_accepts(doc: Any) -> None:
    assert all(valid(doc) for valid in STANDARD)
    assert _inline(doc) is None
    assert _inline(doc, strict=True) is None
    assert _fetched(doc) is None


@pytest.mark.parametrize("doc, path, message", BAD, ids=lambda d: json.dumps(d)[:60])
def test_a_manifest_the_schema_refuses_the_service_refuses_naming_the_path(doc: Any, path: str, message: str) -> None:
    assert not any(valid(doc) for valid in STANDARD)
    for errors in (_inline(doc), _inline(doc, strict=True)):
        assert errors is not None and message in errors.get(path, []), errors
    fetched = _fetched(doc)  # whose paths name the schema only, not a key of the document
    path = FETCHED_PATH.get(path, path)
    assert fetched is not None and any(message in m for m in fetched.get(path, [])), fetched


@pytest.mark.parametrize("doc, path", OUTSIDE, ids=lambda d: json.dumps(d)[:60])
def test_fields_outside_the_schema_are_refused_in_a_fetched_manifest_only(doc: Any, path: str) -> None:
    assert not any(valid(doc) for valid in STANDARD)
    assert _inline(doc) is None
    for errors in (_inline(doc, strict=True), _fetched(doc)):
        assert errors is not None and path in errors
        assert all("fields outside the manifest schema" in m for m in errors[path])


@pytest.mark.parametrize("doc, path, message", BEYOND_THE_SCHEMA, ids=lambda d: json.dumps(d)[:60])
def test_what_the_schema_cannot_say_the_service_still_refuses(doc: Any, path: str, message: str) -> None:
    assert all(valid(doc) for valid in STANDARD)
    for errors in (_inline(doc), _inline(doc, strict=True), _fetched(doc)):
        assert errors is not None and message in errors.get(path, []), errors


def test_the_api_accepts_and_refuses_inline_manifests_as_the_schema_does(edge: Edge) -> None:  # noqa: F811
    build, keys, _ = edge
    c = make_app(build, max_queued_per_workspace=1000, rate_limit_burst=1000).test_client()
    key, _ = keys.create("submitter", ["ws-a"])
    for doc in GOOD:
        answer = c.post("/v1/security-scans", json={**BODY, "manifest": doc}, headers=auth(key))
        assert answer.status_code == 202, (doc, answer.json)
    for doc, path, message in [*BAD, *BEYOND_THE_SCHEMA]:
        if not isinstance(doc, dict) or "deeper" in message:
            continue  # not an object (the request schema refuses it first), or past the body's depth limit
        answer = c.post("/v1/security-scans", json={**BODY, "manifest": doc}, headers=auth(key))
        body = answer.get_json()
        assert answer.status_code == 422 and body is not None, (doc, body)
        assert f"{path}: {message}" in body["error"]["fields"]["manifest"], body


# -- hostile documents ------------------------------------------------------------------------------
def test_messages_about_a_fetched_document_repeat_none_of_it() -> None:
    canary = "AKIA-canary-7f3e"
    for doc in ({"product": {canary: 1}}, {"owners": [canary, {canary: canary}]},
                {"profiles": [{"name": {canary: 1}, "tools": [{"id": [canary]}], "thresholds": {canary: canary}}]},
                {"profiles": [{"name": "x", "tools": [{"id": "a", "config": canary}]}]},
                {"bundle": {"runtimeCeilingMinutes": canary}}, {canary: 1}, [canary]):
        errors = _fetched(doc)
        assert errors is not None and canary not in json.dumps(errors), errors


def test_nesting_past_the_limit_is_refused_before_the_schema_is_applied() -> None:
    deep: Any = {}
    for _ in range(5000):  # far past Python's recursion limit
        deep = {"x": deep}
    doc = {"profiles": [{"name": "x", "tools": [{"id": "a", "config": deep}]}]}
    assert _inline(doc) == {"$": ["the manifest nests deeper than 128 levels"]}
    def nested(levels: int) -> Any:  # a manifest nesting ``levels`` deep: 6 around the config's list
        return {"profiles": [{"name": "x", "tools": [{"id": "a", "config": {"x": json.loads(
            "[" * (levels - 6) + "]" * (levels - 6))}}]}]}

    assert _inline(nested(128)) is None and _fetched(nested(128)) is None
    assert _inline(nested(129)) == _fetched(nested(129)) == {"$": ["the manifest nests deeper than 128 levels"]}


class Counted(list[Any]):
    walks = 0

    def __iter__(self) -> Iterator[Any]:
        Counted.walks += 1
        return super().__iter__()


def test_an_over_long_list_is_refused_without_walking_its_entries() -> None:
    Counted.walks = 0
    huge = Counted([{"id": "x", "config": {"a": 1}}] * 1_000_000)
    errors = _inline({"profiles": [{"name": "p", "tools": huge}]})
    assert errors == {"profiles[0].tools": ["must have at most 100 entries"]}
    assert Counted.walks == 1  # the depth check's one pass, not the schema's


def test_errors_stop_being_collected_after_a_bound() -> None:
    errors = _inline({"profiles": [{"name": "p", "tools": [{"id": 3}] * 100}] * 50})
    assert errors is not None and 0 < sum(len(v) for v in errors.values()) <= manifests.MAX_ERRORS


# -- served ------------------------------------------------------------------------------------------
def test_the_schema_is_served_as_the_file_without_a_key(edge: Edge) -> None:  # noqa: F811
    build, _, _ = edge
    c = build().test_client()
    answer = c.get("/schemas/manifest.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/schema+json"
    assert answer.data == SCHEMA_FILE.read_bytes()
    again = c.get("/schemas/manifest.json", headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304
    document = c.get("/openapi.json").get_json()
    assert document is not None
    described = document["paths"]["/schemas/manifest.json"]["get"]
    assert "security" not in described and "application/schema+json" in described["responses"]["200"]["content"]
