import pytest

from tasks.settings import PREFIX, Settings, SettingsError, markdown_table


def test_defaults_and_env_parsing(tmp_path):
    s = Settings.from_env({
        "CERTUS_ASSURANCE_REDIS_URL": "redis://example:6380/2",
        "CERTUS_ASSURANCE_ARTIFACT_ROOT": str(tmp_path / "a"),
        "CERTUS_ASSURANCE_ALLOW_LOCAL_SOURCES": "yes",
        "CERTUS_ASSURANCE_GIT_ALLOWED_HOSTS": "git.internal, 127.0.0.1",
        "CERTUS_ASSURANCE_SCAN_HARD_TIME_LIMIT": "4000",
    })
    assert s.redis_url == "redis://example:6380/2"
    assert s.broker == s.redis_url
    assert s.artifact_root == str(tmp_path / "a")
    assert s.allow_local_sources is True
    assert s.git_allowed_hosts == ("git.internal", "127.0.0.1")
    assert s.visibility_timeout > s.scan_hard_time_limit
    assert Settings.from_env({}).allow_local_sources is False


@pytest.mark.parametrize("env", [
    {"CERTUS_ASSURANCE_SCAN_HARD_TIME_LIMIT": "ten"},
    {"CERTUS_ASSURANCE_ALLOW_LOCAL_SOURCES": "maybe"},
    {"CERTUS_ASSURANCE_SCAN_SOFT_TIME_LIMIT": "5000"},
    {"CERTUS_ASSURANCE_LOG_FORMAT": "xml"},
    {"CERTUS_ASSURANCE_WS_BLOCK_MS": "6000"},
])
def test_bad_values_are_refused_with_the_variable_name(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_every_setting_is_documented():
    table = markdown_table()
    for name in Settings.__dataclass_fields__:
        assert f"CERTUS_ASSURANCE_{name.upper()}" in table
    assert "| |" not in table


def test_old_archive_setting_names_still_work_and_warn():
    with pytest.warns(FutureWarning, match="UPLOAD_MAX_BYTES is deprecated"):
        s = Settings.from_env({PREFIX + "UPLOAD_MAX_BYTES": "1234"})
    assert s.archive_file_max_bytes == 1234
    assert Settings.from_env({PREFIX + "ARCHIVE_FILE_MAX_BYTES": "99"}).archive_file_max_bytes == 99
    with pytest.raises(SettingsError, match="disagree"):
        Settings.from_env({PREFIX + "UPLOADS_ROOT": "/a", PREFIX + "ARCHIVES_ROOT": "/b"})
