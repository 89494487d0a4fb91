"""Selecting and running the scanners of a profile, in parallel, each turning into SARIF."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks import metrics
from tasks.pathsafe import MAX_TREE_DEPTH
from tasks.settings import Settings
from workers import sarif, toolrun
from workers.bundle import Bundle, storage_full
from workers.emitter import ScanEmitter
from workers.pipeline.manifest import ResolvedManifest
from workers.sandbox import KILLED_BY, Confinement, Sandbox, scrub, tool_paths
from workers.scanners.base import Finding, Scanner, ToolContext, ToolFailed
from workers.sizewatch import SizeWatch

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
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the tools found worth a scan warning (a repository that tried to switch a check off).
    warnings: list[dict[str, str]] = field(default_factory=list)

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
            "tool_details": dict(sorted(self.details.items())),
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
    sandbox = Sandbox(settings)

    def one(scanner: Scanner, config: dict[str, Any]) -> None:
        # Each tool has its own output folder and home, the only places it may write.
        out_dir = scratch / scanner.id
        home = out_dir / ".home"
        home.mkdir(parents=True, exist_ok=True)
        for folder in (out_dir, home):
            sandbox.give(folder)
        ctx = ToolContext(source_dir=source, out_dir=out_dir, config=config, home=home)
        report.versions[scanner.id] = scanner.version()
        argv = scanner.command(ctx)
        emitter.emit("tool_start", tool=scanner.id, command=argv)
        cwd = out_dir if scanner.runs_outside_source else source
        confined, env = sandbox.wrap(argv, Confinement(
            read_only=(source, *tool_paths(argv, exclude=(source, out_dir))), writable=(out_dir,),
            env=toolrun.scrubbed_env(home=str(home))), cwd)
        watch = SizeWatch(out_dir, settings.sandbox_output_bytes)
        result = toolrun.run(confined, cwd=str(cwd), timeout=settings.tool_timeout,
                             on_line=lambda stream, line: _emit_line(emitter, scanner.id, stream, line),
                             max_lines=settings.tool_output_max_lines, env=env,
                             should_stop=lambda: watch.exceeded() or should_stop(),
                             capture_stdout=scanner.report_on_stdout)
        report.durations[scanner.id] = result.duration_s
        metrics.TOOL_DURATION.labels(tool=scanner.id).observe(result.duration_s)
        # The tool and all it started have ended: what it left is read by the worker itself, so
        # links, special files and over-deep folders go first.
        scrubbed = scrub(out_dir, MAX_TREE_DEPTH)
        if scrubbed:
            _emit_line(emitter, scanner.id, "stderr", f"note: removed {scrubbed} links, special files or "
                                                      f"over-deep folders the tool left in its output")
        findings: list[Finding] = []
        killed = KILLED_BY.get(result.exit_code or 0) if sandbox.enabled else None
        if watch.over:
            message = f"{scanner.id} wrote more than {settings.sandbox_output_bytes} bytes and was stopped"
            report.errors[scanner.id] = message
            emitter.error("tool_output_too_large", message, tool=scanner.id)
        elif result.cancelled:
            report.errors[scanner.id] = "stopped"
        elif result.timed_out:
            report.errors[scanner.id] = f"timed out after {settings.tool_timeout} s"
            emitter.error("tool_timeout", f"{scanner.id} timed out after {settings.tool_timeout} s",
                          tool=scanner.id)
        elif killed:
            # A limit of the sandbox stopped it (or it crashed): its output cannot be trusted.
            report.errors[scanner.id] = f"killed by {killed}"
            emitter.error("tool_killed", f"{scanner.id} was killed by {killed}", tool=scanner.id)
        else:
            try:
                output = scanner.parse(ctx, result)
                findings = output.findings
                report.warnings.extend(output.warnings)
                for note in output.notes:
                    _emit_line(emitter, scanner.id, "stderr", f"note: {note}")
                if output.sarif:
                    bundle.write_json(f"reports/sast/{scanner.id}.sarif.json",
                                      sarif.build(scanner.id, report.versions[scanner.id], findings))
                for rel, data in output.files.items():
                    bundle.write_bytes(rel, data)
                report.findings[scanner.id] = findings
                if output.details:
                    report.details[scanner.id] = output.details
            except ToolFailed as exc:
                report.errors[scanner.id] = str(exc)
                emitter.error("tool_failed", str(exc), tool=scanner.id)
        if scanner.id in report.errors:
            reason = "timeout" if result.timed_out else "stopped" if result.cancelled else "failed"
            metrics.TOOL_FAILURES.labels(tool=scanner.id, reason=reason).inc()
        emitter.emit("tool_complete", tool=scanner.id, exit_code=result.exit_code, findings=len(findings),
                     duration_s=result.duration_s)

    with ThreadPoolExecutor(max_workers=settings.tool_parallelism, thread_name_prefix="tool") as pool:
        futures = [pool.submit(one, scanner, config) for scanner, config in runnable]
        for future in futures:
            exc = future.exception()
            if exc is not None:
                log.error("tool runner crashed: %s", exc.__class__.__name__, exc_info=exc)
    for future in futures:
        exc = future.exception()
        if isinstance(exc, OSError) and storage_full(exc):
            raise exc  # the disk is full: the scan ends storage_full, not with a tool error
    for (scanner, _), future in zip(runnable, futures, strict=True):
        if future.exception() is not None:
            metrics.TOOL_FAILURES.labels(tool=scanner.id, reason="crashed").inc()
            report.errors.setdefault(scanner.id, "the tool runner crashed")
    return report


def _emit_line(emitter: ScanEmitter, tool: str, stream: str, line: str) -> None:
    emitter.emit("log", tool=tool, stream=stream, line=line)
