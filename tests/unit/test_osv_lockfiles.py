"""Lock-file parsers: the formats and corners the fixture does not cover."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workers.osv.database import Database
from workers.osv.lockfiles import inventory, parse_package_lock, parse_requirements, parse_toml_lock

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_pins_and_what_is_not_a_pin():
    text = "\n".join([
        "Django == 3.2.1",
        "zope.interface===5.0",
        "a_b-c.d==1.0 ; sys_platform == 'linux'  # note",
        "-r other.txt",
        "--index-url https://example.invalid/simple",
        "-e git+https://example.invalid/x.git#egg=x",
        "https://example.invalid/pkg.whl",
        "ranged>=1,<2",
        "star==1.*",
        "bare",
        "# comment",
    ])
    deps, unpinned = parse_requirements(text, "req.txt")
    assert [(d.name, d.version, d.line) for d in deps] == [("Django", "3.2.1", 1), ("zope.interface", "5.0", 2),
                                                           ("a_b-c.d", "1.0", 3)]
    assert [u["requirement"] for u in unpinned] == ["ranged>=1,<2", "star==1.*", "bare"]


def test_package_lock_v1_nested_and_links():
    lock = {"lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
        "local": {"version": "file:../local"},
        "gitdep": {"version": "git+https://example.invalid/x.git#abc"}}}
    deps = parse_package_lock(json.dumps(lock, indent=2), "package-lock.json")
    assert sorted((d.name, d.version) for d in deps) == [("a", "1.0.0"), ("b", "2.0.0")]


def test_package_lock_v3_scoped_and_linked():
    lock = {"lockfileVersion": 3, "packages": {
        "": {"name": "root", "version": "1.0.0"},
        "node_modules/@scope/pkg": {"version": "3.1.4"},
        "node_modules/a/node_modules/b": {"version": "1.2.3"},
        "node_modules/linked": {"resolved": "../x", "link": True}}}
    deps = parse_package_lock(json.dumps(lock, indent=2), "package-lock.json")
    assert sorted((d.name, d.version) for d in deps) == [("@scope/pkg", "3.1.4"), ("b", "1.2.3")]


def test_poetry_git_and_path_sources_are_skipped():
    text = """
[[package]]
name = "from-git"
version = "1.0"
[package.source]
type = "git"
url = "https://example.invalid/x.git"

[[package]]
name = "real"
version = "2.0"
"""
    deps = parse_toml_lock(text, "poetry.lock")
    assert [(d.name, d.version, d.line) for d in deps] == [("real", "2.0", 10)]


def test_node_modules_and_virtualenvs_are_not_walked(tmp_path):
    (tmp_path / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / "node_modules" / "x" / "package-lock.json").write_text('{"packages": {"node_modules/y": '
                                                                       '{"version": "1.0.0"}}}')
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "requirements.txt").write_text("requests==2.0.0\n")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "base.txt").write_text("requests==2.19.1\n")
    inv = inventory(tmp_path)
    assert inv.files == ["requirements/base.txt"]
    assert [(d.name, d.version) for d in inv.dependencies] == [("requests", "2.19.1")]


def test_import_command_installs_a_dump_copied_by_hand(tmp_path):
    db = tmp_path / "db"
    proc = subprocess.run([sys.executable, "-m", "workers.osv", "--db", str(db), "import", "PyPI",
                           str(ROOT / "tests/fixtures/osv/PyPI-all.zip")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["advisories"] == 2661
    info = Database.open(db).describe()["ecosystems"]["PyPI"]
    assert info["source"].startswith("file:") and info["fetched_at"] and info["sha256"]
    proc = subprocess.run([sys.executable, "-m", "workers.osv", "--db", str(db), "info"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["ecosystems"]["PyPI"]["advisories"] == 2661
