"""The JSON depth pre-check runs on every authenticated JSON body, before parsing: hostile bodies of
the largest size the API takes are answered in time linear in their size, and the depth limit
(413 ``json_too_deep``) holds exactly as before.

Times are compared with a benign body of the same size, never with a fixed figure, and with a
generous factor: the check walks both byte by byte. A pattern that made the pre-check quadratic
(an unterminated ``"\\`` run: 48 KB took 8.7 s) blows any such bound by orders of magnitude.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from app.limits import json_depth, too_deep
from tests.support.edge import BODY, auth, edge, make_app  # noqa: F401 - edge is a fixture

MIB = 1 << 20
LIMIT = 32


def _fill(head: bytes, unit: bytes, size: int) -> bytes:
    return (head + unit * (size // len(unit) + 1))[:size]


# Each one walks the whole body: more opening brackets than the limit, so the cheap count does
# not spare the walk.
PATHOLOGICAL: dict[str, Callable[[int], bytes]] = {
    "open string of quote-backslash pairs": lambda n: _fill(b"[" * 40 + b'"', b'\\"', n),
    "quote-backslash pairs": lambda n: _fill(b"[" * 40, b'"\\', n),
    "one long backslash run": lambda n: _fill(b"[" * 40 + b'"', b"\\", n),
    "escaped quotes after brackets": lambda n: _fill(b'["', b'\\"[', n),
    "opening brackets only": lambda n: b"[" * n,
    "unterminated string of brackets": lambda n: _fill(b"[" * 40 + b'"', b"[{", n),
    "quotes only": lambda n: _fill(b"[" * 40, b'"', n),
    "backslash-quote soup": lambda n: _fill(b"{" * 40, b'\\\\"\\"\\\\\\', n),
}


def _benign(size: int) -> bytes:
    """Valid-looking JSON of ``size`` bytes, nesting 3 deep, with plenty of brackets and strings."""
    return _fill(b'{"items": ', b'[{"name": "scan", "tags": ["a", "b\\"c"], "n": [1, 2, 3]}], ', size)


def _seconds(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _assert_linear(run: Callable[[bytes], object], make: Callable[[int], bytes], top: int) -> None:
    """``run`` on ``make(size)`` takes at most ~10x what it takes on a benign body of the same size,
    for sizes doubling up to ``top``: a quadratic walk is caught at the first, small size."""
    size = 16 * 1024
    while size <= top:
        hostile, benign = make(size), _benign(size)
        assert len(hostile) == len(benign) == size
        slow, base = _seconds(lambda: run(hostile)), _seconds(lambda: run(benign))
        assert slow <= 10 * base + 0.1, f"{size} bytes: {slow:.3f}s against {base:.3f}s for a benign body"
        size *= 4


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_the_depth_walk_is_linear_on_hostile_bodies_up_to_one_mib(name):
    _assert_linear(json_depth, PATHOLOGICAL[name], MIB)


def test_a_readers_get_with_a_hostile_one_mib_body_is_answered_at_once(edge):  # noqa: F811
    build, keys, _ = edge
    c = make_app(build, max_body_bytes=MIB).test_client()
    reader, _ = keys.create("reader", ["ws-a"])

    def get(body: bytes):
        return c.get("/v1/security-scans", data=body, content_type="application/json", headers=auth(reader))

    hostile = PATHOLOGICAL["quote-backslash pairs"]
    _assert_linear(get, hostile, MIB)  # first: a quadratic walk fails here in seconds, not in an hour
    answer = get(hostile(MIB))
    assert answer.status_code == 413 and answer.json["error"]["code"] == "json_too_deep"
    assert get(_benign(MIB)).status_code == 200


# -- the limit itself -----------------------------------------------------------------------------
_OLD_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _regex_depth(data: bytes) -> int:
    """The pre-check as it was (strings cut out by a regular expression, then brackets counted),
    kept to show the new walk answers the same on everything a client may legitimately send."""
    depth = deepest = 0
    for match in re.finditer(rb"[\[\]{}]", _OLD_STRINGS.sub(b"", data)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


CORPUS = [b"", b"1", b'"x"', b"[]", b"{}", b"[[]]", b'{"a": [1, {"b": [2]}]}', b'"[[[{{{"',
          b'{"s": "\\"[[[[\\\\"}', b'{"s": "\\\\", "t": [[["\\""]]]}', b'["\\u005b[", ["]"]]',
          b"[1, [2, [3, [4]]], 5]", b"]]][[[", b'{"a": "}}}}", "b": {"c": "{{{{"}}',
          json.dumps(_nested(40)).encode(), json.dumps({"s": "\\" * 9 + '"' + "[" * 50}).encode(),
          json.dumps(["\u202e[", {"k": "é{"}], ensure_ascii=False).encode()]


@pytest.mark.parametrize("data", CORPUS)
def test_the_walk_measures_what_the_regular_expression_measured(data):
    assert json_depth(data) == _regex_depth(data)


def test_brackets_after_an_unterminated_string_are_not_json_and_not_counted():
    # The parser stops at the open string; nothing after it is ever nested.
    assert json_depth(b'[["abc' + b"[" * 100) == 2
    with pytest.raises(ValueError):
        json.loads(b'[["abc' + b"[" * 100)


@pytest.mark.parametrize("depth", [1, LIMIT - 1, LIMIT, LIMIT + 1, 100])
def test_the_limit_is_exact(depth):
    body = json.dumps(_nested(depth)).encode()
    assert json_depth(body) == depth
    assert too_deep(body, LIMIT) is (depth > LIMIT)


def test_the_limit_holds_at_the_edge(edge):  # noqa: F811
    build, keys, client = edge
    c = make_app(build, max_json_depth=8).test_client()
    key, _ = keys.create("submitter", ["ws-a"])

    def submit(manifest_depth: int, **extra):
        manifest = {"profiles": [{"name": "light", "tools": ["bandit"]}], "x": _nested(manifest_depth)}
        return c.post("/v1/security-scans", json={**BODY, "manifest": manifest, **extra}, headers=auth(key))

    # body {manifest {x ...}}: two levels around the nested value
    assert submit(6).status_code == 202
    deep = submit(7)
    assert deep.status_code == 413 and deep.json["error"]["code"] == "json_too_deep"
    quoted = submit(6, requested_by='\\"[[[[[[[[[[{{{{{{{{{{\\')
    assert quoted.status_code == 202, quoted.json
    assert client.zcard("ca:idx:all") == 2
