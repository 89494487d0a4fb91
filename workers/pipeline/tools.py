"""Selecting and running the scanners of a profile, in parallel, each turning into SARIF."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.settings import Settings
from workers import sarif, toolrun
from workers.bundle import Bundle
from workers.emitter import ScanEmitter
from workers.pipeline.manifest import ResolvedManifest
from workers.scanners.base import Finding, Scanner, ToolContext, ToolFailed

log = logging.getLogger(__name__)


@dataclass
class Selection:
    tools: list[tuple[Scanner, dict[str, Any]]]
    unsupported: list[str]


@dataclass
class ToolRunReport:
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        by_tool = {tool: sarif.severity_counts(found) for tool, found in sorted(self.findings.items())}
        by_severity = {s: sum(c[s] for c in by_tool.values()) for s in ("critical", "high", "medium", "low",
                                                                          "info")}
        return {
            "total": sum(by_severity.values()),
            "by_severity": by_severity,
            "by_tool": by_tool,
            "executed_tools": sorted(self.findings) + sorted(t for t in self.errors if t not in self.findings),
            "skipped_tools": dict(sorted(self.skipped.items())),
            "tool_errors": dict(sorted(self.errors.items())),
            "durations_s": dict(sorted(self.durations.items())),
        }


def select_tools(manifest: ResolvedManifest, scanners: dict[str, Scanner]) -> Selection:
    chosen: list[tuple[Scanner, dict[str, Any]]] = []
    unsupported = []
    for tool in manifest.tools:
        scanner = scanners.get(tool)
        if scanner is None:
            unsupported.append(tool)
        elif all(s.id != scanner.id for s, _ in chosen):
            chosen.append((scanner, manifest.tool_config.get(tool, {})))
    # Keep what the profile resolution already recorded (tools of a profile that fell back).
    manifest.unsupported = list(dict.fromkeys([*manifest.unsupported, *unsupported]))
    return Selection(chosen, unsupported)


def run_tools(selection: Selection, source: Path, scratch: Path, bundle: Bundle, emitter: ScanEmitter,
              settings: Settings, should_stop: Callable[[], bool]) -> ToolRunReport:
    report = ToolRunReport()
    runnable = []
    for scanner, config in selection.tools:
        reason = scanner.unavailable_reason()
        if reason:
            report.skipped[scanner.id] = reason
            emitter.phase("scan", f"skipped {scanner.id}: {reason}", tool=scanner.id)
        else:
            runnable.append((scanner, config))
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)

    def one(scanner: Scanner, config: dict[str, Any]) -> None:
        out_dir = scratch / scanner.id
        out_dir.mkdir(parents=True, exist_ok=True)
        ctx = ToolContext(source_dir=source, out_dir=out_dir, config=config, home=home)
        report.versions[scanner.id] = scanner.version()
        argv = scanner.command(ctx)
        emitter.emit("tool_start", tool=scanner.id, command=argv)
        result = toolrun.run(argv, cwd=str(source), timeout=settings.tool_timeout,
                             on_line=lambda stream, line: _emit_line(emitter, scanner.id, stream, line),
                             max_lines=settings.tool_output_max_lines,
                             env=toolrun.scrubbed_env(home=str(home)), should_stop=should_stop)
        report.durations[scanner.id] = result.duration_s
        findings: list[Finding] = []
        if result.cancelled:
            report.errors[scanner.id] = "stopped"
        elif result.timed_out:
            report.errors[scanner.id] = f"timed out after {settings.tool_timeout} s"
            emitter.error("tool_timeout", f"{scanner.id} timed out after {settings.tool_timeout} s",
                          tool=scanner.id)
        else:
            try:
                output = scanner.parse(ctx, result)
                findings = output.findings
                if output.sarif:
                    bundle.write_json(f"reports/sast/{scanner.id}.sarif.json",
                                      sarif.build(scanner.id, report.versions[scanner.id], findings))
                for rel, data in output.files.items():
                    bundle.write_bytes(rel, data)
                report.findings[scanner.id] = findings
            except ToolFailed as exc:
                report.errors[scanner.id] = str(exc)
                emitter.error("tool_failed", str(exc), tool=scanner.id)
        emitter.emit("tool_complete", tool=scanner.id, exit_code=result.exit_code, findings=len(findings),
                     duration_s=result.duration_s)

    with ThreadPoolExecutor(max_workers=settings.tool_parallelism, thread_name_prefix="tool") as pool:
        futures = [pool.submit(one, scanner, config) for scanner, config in runnable]
        for future in futures:
            exc = future.exception()
            if exc is not None:
                log.error("tool runner crashed: %s", exc.__class__.__name__, exc_info=exc)
    for (scanner, _), future in zip(runnable, futures, strict=True):
        if future.exception() is not None:
            report.errors.setdefault(scanner.id, "the tool runner crashed")
    return report


def _emit_line(emitter: ScanEmitter, tool: str, stream: str, line: str) -> None:
    emitter.emit("log", tool=tool, stream=stream, line=line)
