import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.schemas.scans import ScanRequestSchema

BASE = {"workspace_id": "ws", "component_id": "comp-1", "assessment_id": "A.1_x",
        "git_url": "https://git.example.com/org/repo.git"}


def load(**over):
    body = {**BASE, **over}
    body = {k: v for k, v in body.items() if v is not None}
    return ScanRequestSchema().load(body)


def errors(**over):
    with pytest.raises(ValidationError) as exc:
        load(**over)
    return exc.value.messages


def test_minimal_valid_request_gets_defaults():
    data = load()
    assert data["source_type"] == "git" and data["profile"] == "light"


@pytest.mark.parametrize("field,value", [
    ("workspace_id", "Upper"), ("workspace_id", "-lead"), ("workspace_id", "a" * 64),
    ("component_id", ""), ("assessment_id", ".x"), ("assessment_id", "a" * 129),
    ("commit", "abc12"), ("commit", "g" * 40), ("commit", "a" * 41),
    ("branch", "-evil"), ("branch", "a..b"), ("branch", "x y"), ("branch", "refs/heads/x.lock"),
    ("git_url", "ext::sh -c touch% /tmp/pwned"), ("git_url", "--upload-pack=touch /tmp/x"),
    ("git_url", "ftp://host/repo"), ("git_url", "https://user:pass@host/repo"),
    ("git_url", "https://host/repo?x=1"), ("requested_by", "x" * 257),
    ("source_type", "svn"), ("profile", "../etc"), ("manifest_uri", "http://host/m.json"),
    ("manifest_path", "../outside.json"), ("manifest_path", "/etc/passwd"),
])
def test_each_rule_names_its_field(field, value):
    assert field in errors(**{field: value})


def test_commit_is_normalised_and_branch_with_commit_allowed():
    data = load(commit="ABCDEF1", branch="release/1.0")
    assert data["commit"] == "abcdef1" and data["branch"] == "release/1.0"


def test_source_type_requirements():
    assert "git_url" in errors(git_url=None)
    assert "directory_path" in errors(source_type="directory", git_url=None)
    msgs = errors(source_type="archive", git_url="https://h/r", archive_path="/x.tar")
    assert "git_url" in msgs
    assert "branch" in errors(source_type="directory", git_url=None, directory_path="/srv/x", branch="main")


def test_at_most_one_manifest_and_signature_needs_uri():
    msgs = errors(manifest={}, manifest_path="m.json")
    assert "manifest" in msgs and "manifest_path" in msgs
    assert "manifest_signature_uri" in errors(manifest_signature_uri="https://h/m.sig")


def test_profile_must_exist_unless_a_fetched_manifest_may_define_it():
    assert "profile" in errors(profile="nonexistent")
    assert load(profile="LIGHT")["profile"] == "LIGHT"
    assert load(profile="custom", manifest_path="certus.json")["profile"] == "custom"
    inline = {"profiles": [{"name": "Custom", "tools": ["bandit"]}]}
    assert load(profile="custom", manifest=inline)["manifest"] == inline


def test_invalid_inline_manifest_is_refused():
    msgs = errors(manifest={"profiles": [{"name": "x", "thresholds": {"high": -1}}]})
    assert "manifest" in msgs and "thresholds" in msgs["manifest"][0]


def test_unknown_fields_are_refused():
    assert "surprise" in errors(surprise=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(list(ScanRequestSchema().fields)),
                       st.one_of(st.text(max_size=50), st.integers(), st.none(), st.booleans(),
                                 st.lists(st.text(max_size=5), max_size=3))))
def test_arbitrary_input_either_loads_or_raises_validation_error(body):
    try:
        data = ScanRequestSchema().load(body)
    except ValidationError as exc:
        assert isinstance(exc.messages, dict)
    else:
        assert data["workspace_id"] and data["assessment_id"]


# -- hostile git URLs and refs: whatever is accepted is safe to hand to git -------------------------
_URL_ALPHABET = st.sampled_from(list("abcxyz019-._~:/@?#[]%\\ \n\t+=!$&'()*,;") + ["ext::", "fd::", "--", "::"])


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["", "https://", "http://", "ssh://", "git://", "file://", "ext::", "-", "ftp://", "/"]),
       st.lists(_URL_ALPHABET, max_size=25).map("".join))
def test_every_accepted_git_url_is_safe(prefix, rest):
    from urllib.parse import urlsplit

    url = prefix + rest
    try:
        data = load(git_url=url)
    except ValidationError as exc:
        assert "git_url" in exc.messages
        return
    accepted = data["git_url"]
    assert not accepted.startswith("-") and "::" not in accepted.split("/", 1)[0]
    assert not any(c.isspace() or ord(c) < 0x20 for c in accepted)
    if accepted.startswith("/"):
        assert ".." not in accepted.split("/")
        return
    parts = urlsplit(accepted)
    assert parts.scheme in ("https", "http", "ssh", "git", "file")
    assert parts.password is None and not parts.query and not parts.fragment
    assert "\\" not in accepted and "%" not in parts.netloc
    if parts.scheme != "file":
        assert parts.hostname and not parts.hostname.startswith("-")
        assert parts.username is None or (parts.scheme == "ssh" and not parts.username.startswith("-"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=40))
def test_every_accepted_branch_is_a_safe_ref(branch):
    try:
        data = load(branch=branch)
    except ValidationError as exc:
        assert "branch" in exc.messages
        return
    ref = data["branch"]
    assert not ref.startswith(("-", "/", ".")) and ".." not in ref and "@{" not in ref
    assert not any(c in ref for c in " ~^:?*[\\")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_every_accepted_manifest_path_stays_inside(path):
    try:
        data = load(manifest_path=path)
    except ValidationError:
        return
    accepted = data["manifest_path"]
    assert not accepted.startswith(("/", "\\", "-"))
    assert ".." not in accepted.replace("\\", "/").split("/")
    assert "\x00" not in accepted


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab", max_size=6),
                            lambda children: st.lists(children, max_size=3)
                            | st.dictionaries(st.text(alphabet="[]{}\"ab", max_size=4), children, max_size=3),
                            max_leaves=30)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_json_depth_scan_matches_the_parsed_depth(value):
    import json

    from app.limits import json_depth

    assert json_depth(json.dumps(value).encode()) == _depth(value)


@settings(max_examples=300, deadline=None)
@given(_json_values, st.integers(min_value=0, max_value=6))
def test_too_deep_agrees_with_the_depth_scan(value, limit):
    import json

    from app.limits import json_depth, too_deep

    data = json.dumps(value).encode()
    assert too_deep(data, limit) == (json_depth(data) > limit)



@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["branch", "requested_by", "manifest_path", "git_url"]),
       st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x3000), min_size=1, max_size=30))
def test_no_accepted_identifier_or_name_holds_a_hidden_character(field, text):
    from tasks.textsafe import visible

    value = {"git_url": f"https://git.example.com/{text}"}.get(field, text)
    try:
        data = load(**{field: value})
    except ValidationError as exc:
        assert field in exc.messages
        return
    assert visible(data[field]) == data[field]
