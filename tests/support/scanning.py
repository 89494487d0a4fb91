"""Running one real scanner adapter on a folder the way the pipeline does, without the service."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from workers import sarif, toolrun
from workers.scanners.base import Scanner, ToolContext, ToolOutput


def run_scanner(scanner: Scanner, source: Path, scratch: Path, config: dict[str, Any] | None = None,
                lines: list[str] | None = None) -> ToolOutput:
    out_dir = scratch / scanner.id
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    ctx = ToolContext(source_dir=source, out_dir=out_dir, config=config or {}, home=home)
    sink = lines if lines is not None else []
    result = toolrun.run(scanner.command(ctx), cwd=str(source), timeout=600,
                         on_line=lambda _stream, line: sink.append(line),
                         env=toolrun.scrubbed_env(home=str(home)))
    assert not result.timed_out, f"{scanner.id} timed out"
    return scanner.parse(ctx, result)


def sarif_of(scanner: Scanner, output: ToolOutput) -> dict[str, Any]:
    return sarif.build(scanner.id, scanner.version(), output.findings)


def sarif_text(scanner: Scanner, output: ToolOutput) -> str:
    return json.dumps(sarif_of(scanner, output))


def located(output: ToolOutput) -> set[tuple[str, str | None, int | None]]:
    return {(f.rule_id, f.path, f.line) for f in output.findings}
