"""Terraform modules from outside the checkout: checkov follows a module's ``source`` wherever it
points (an absolute path, ``../..``, a link out of the tree), so a scanned repository could make it
read and evaluate files elsewhere on the worker and put what they hold into the scan's findings,
SARIF and log. The real checkov runs through its adapter as a scan runs it; nothing from outside
may come back, the attempt is a ``terraform_module_outside_source`` warning, and modules inside
the checkout are still evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scanrun import copy_fixture
from workers import sarif, toolrun
from workers.scanners.base import ToolContext, ToolOutput
from workers.scanners.checkov import MODULE_OUTSIDE, Checkov

MARKER = "certus_outside_marker_5d1e"
BUCKET = """resource "aws_s3_bucket" "{name}" {{
  bucket = "{name}-bucket"
  acl    = "public-read"
}}
"""


def _run(source: Path, scratch: Path) -> tuple[ToolOutput, list[str]]:
    """checkov through its adapter the way the pipeline runs it, every log line kept."""
    scanner = Checkov()
    assert scanner.unavailable_reason() is None, "run `make tools` first"
    out_dir = scratch / scanner.id
    out_dir.mkdir(parents=True)
    home = scratch / "home"
    home.mkdir()
    ctx = ToolContext(source_dir=source, out_dir=out_dir, config={}, home=home)
    lines: list[str] = []
    result = toolrun.run(scanner.command(ctx), cwd=str(out_dir if scanner.runs_outside_source else source),
                         timeout=300, on_line=lambda _stream, line: lines.append(line),
                         env=toolrun.scrubbed_env(home=str(home)), capture_stdout=scanner.report_on_stdout)
    return scanner.parse(ctx, result), lines


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "host" / "secret-infra"
    folder.mkdir(parents=True)
    (folder / "main.tf").write_text(BUCKET.format(name=MARKER))
    return folder


def _source(tmp_path: Path, module_source: str) -> Path:
    root = tmp_path / "checkout" / "repo"
    (root / "infra").mkdir(parents=True)
    (root / "modules" / "bucket").mkdir(parents=True)
    (root / "infra" / "main.tf").write_text(
        f'module "m" {{\n  source = "{module_source}"\n}}\n\nmodule "inside" {{\n  source = "../modules/bucket"\n}}\n')
    (root / "modules" / "bucket" / "main.tf").write_text(BUCKET.format(name="inside_bucket"))
    return root


@pytest.mark.parametrize("how", ["absolute", "dotdot", "link"])
def test_a_module_outside_the_checkout_is_not_evaluated(tmp_path: Path, outside: Path, how: str) -> None:
    if how == "absolute":
        source = _source(tmp_path, str(outside))
    elif how == "dotdot":
        source = _source(tmp_path, "../../../host/secret-infra")
    else:
        source = _source(tmp_path, "../modules/linked")
        (source / "modules" / "linked").symlink_to(outside, target_is_directory=True)
    output, lines = _run(source, tmp_path / "scratch")

    doc = json.dumps(sarif.build("checkov", "test", output.findings))
    everything = "\n".join([repr(output), doc, *lines])
    assert MARKER not in everything
    assert all(f.path and (source / f.path).resolve().is_relative_to(source.resolve()) for f in output.findings)
    warnings = [w for w in output.warnings if w["code"] == MODULE_OUTSIDE]
    assert len(warnings) == 1 and "infra" in warnings[0]["message"]
    assert str(outside) not in warnings[0]["message"]
    # the module inside the checkout is still followed and its bucket judged
    assert {f.rule_id for f in output.findings if f.path == "modules/bucket/main.tf"} >= {"CKV_AWS_20"}


def test_an_ordinary_tree_gets_no_module_warning(tmp_path: Path) -> None:
    source = copy_fixture("vulnerable-deps", tmp_path / "src")
    output, lines = _run(source, tmp_path / "scratch")
    assert output.findings and not [w for w in output.warnings if w["code"] == MODULE_OUTSIDE]
    assert not any('"check_id"' in line for line in lines)  # checkov's report is not echoed into the log
