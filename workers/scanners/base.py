"""What every scanner adapter provides, and the finding it reports."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workers.toolrun import ProcessResult

SEVERITIES = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class Finding:
    tool: str
    rule_id: str
    message: str
    severity: str
    path: str | None = None  # relative to the source root, '/' separated
    line: int | None = None
    end_line: int | None = None
    column: int | None = None
    snippet: str | None = None
    rule_name: str | None = None
    help_uri: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolContext:
    source_dir: Path
    out_dir: Path  # scratch folder for this tool's raw output
    config: dict[str, Any]
    home: Path


@dataclass
class ToolOutput:
    findings: list[Finding]
    # Extra bundle files: bundle-relative path -> bytes (e.g. SBOM documents).
    files: dict[str, bytes] = field(default_factory=dict)
    sarif: bool = True  # write reports/sast/<tool>.sarif.json from the findings
    notes: list[str] = field(default_factory=list)
    # Facts about the run a reader of the summary needs (e.g. the age of a vulnerability database).
    details: dict[str, Any] = field(default_factory=dict)
    # Scan warnings ({"code", "message"}), e.g. the repository's own tool configuration or inline
    # suppression comments that were not honoured (workers/scanners/suppressions.py).
    warnings: list[dict[str, str]] = field(default_factory=list)


class ToolFailed(RuntimeError):
    """The tool ran but its result cannot be trusted (crash, unreadable report)."""


def read_json_report(tool: str, path: Path, result: ProcessResult, *, ok_exit: tuple[int, ...] = (0,),
                     empty: Any = None) -> Any:
    """The JSON report a tool wrote. An exit code outside ``ok_exit``, a missing report or one that
    does not parse is a ``ToolFailed`` -- never read as "no findings". ``empty``: what an empty
    report file means, for tools that write nothing when they find nothing."""
    if result.exit_code not in ok_exit or not path.exists():
        raise ToolFailed(f"{tool} exited {result.exit_code} without a report: {result.stderr_tail[-300:]}")
    text = path.read_text()
    if empty is not None and not text.strip():
        return empty
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ToolFailed(f"{tool} wrote an unreadable report") from exc


class Scanner(Protocol):
    """A scanner adapter. An adapter subclasses this protocol, so it takes the capabilities'
    defaults and sets only those it differs in; ``workers/scanners/registry.py`` lists the adapters."""

    id: str
    # It reads earlier commits, not only the checked-out tree: a git source is then cloned with its
    # whole history instead of the branch tip alone.
    needs_history: bool = False
    # Its stdout is its report: kept whole for ``parse`` (``ProcessResult.stdout_tail``) instead of
    # being streamed as log lines.
    report_on_stdout: bool = False
    # It runs in its scratch folder (``ToolContext.out_dir``) instead of the source tree: for tools
    # that would load configuration, or code, from their working folder.
    runs_outside_source: bool = False

    def unavailable_reason(self) -> str | None: ...

    def version(self) -> str: ...

    def command(self, ctx: ToolContext) -> list[str]: ...

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput: ...


TOOLS_DIR = Path(__file__).resolve().parents[2] / ".tools"


def find_executable(name: str) -> str | None:
    """A scanner from the service's environment (next to its Python), from one of the scanner
    environments under ``.tools/<name>/bin`` (``make tools``), or from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    for bindir in sorted(TOOLS_DIR.glob("*/bin")):
        if (bindir / name).exists():
            return str(bindir / name)
    return shutil.which(name)
