"""Runs one scanner adapter the way the pipeline does (real subprocess, scrubbed environment)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from workers import toolrun
from workers.scanners.base import Scanner, ToolContext, ToolOutput

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def copy_fixture(name: str, dest: Path) -> Path:
    """A copy outside the project's git repository, as a scan's checkout would be."""
    target = dest / name
    shutil.copytree(FIXTURES / name, target, symlinks=True)
    return target


def run_scanner(scanner: Scanner, source: Path, scratch: Path, config: dict[str, Any] | None = None
                ) -> tuple[ToolOutput, toolrun.ProcessResult]:
    out_dir = scratch / scanner.id
    out_dir.mkdir(parents=True, exist_ok=True)
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    ctx = ToolContext(source_dir=source, out_dir=out_dir, config=config or {}, home=home)
    cwd = out_dir if scanner.runs_outside_source else source
    result = toolrun.run(scanner.command(ctx), cwd=str(cwd), timeout=300,
                         env=toolrun.scrubbed_env(home=str(home)),
                         capture_stdout=scanner.report_on_stdout)
    return scanner.parse(ctx, result), result
