"""The docs say what the code does: the README's settings table is the one the settings generate."""

from pathlib import Path

from tasks.settings import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_matches_the_settings():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate it with: python -m tasks.settings --markdown"
