"""Turns the live event stream into a readable progress display: one line per phase, per tool
start and finish, the tools' output indented beneath them, and a verdict at the end."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from cli.textsafe import visible
from tasks.states import SEVERITIES

SEVERITY_ORDER: tuple[str, ...] = SEVERITIES
# The only escape sequences the CLI writes itself (colours, on a terminal); anything else is escaped.
PALETTE = ("1;34", "36", "32", "31", "1;31", "1;32", "1;33")
OWN_SEQUENCES = frozenset({"\033[0m", *(f"\033[{code}m" for code in PALETTE)})


class Progress:
    def __init__(self, out: TextIO | None = None, *, show_logs: bool = True, as_json: bool = False) -> None:
        self.out = out if out is not None else sys.stdout
        self.show_logs = show_logs
        self.as_json = as_json
        self.color = (not as_json) and self.out.isatty()
        self.phase_started: dict[str, float] = {}
        self.current_phase: str | None = None
        self.tools_done = 0
        self.tools_started = 0

    def _c(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _tally(self) -> str:
        return f"[tools: {self.tools_done} done, {self.tools_started - self.tools_done} running]"

    def event(self, event: dict[str, Any]) -> None:
        if self.as_json:
            self._line(json.dumps(event, separators=(",", ":")))
            return
        kind = event.get("type")
        ts = event.get("timestamp")
        stamp = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) else "--:--:--"
        if kind == "phase":
            phase = visible(event.get("phase", "?"))
            now = float(ts) if isinstance(ts, int | float) else time.time()
            took = ""
            if phase == self.current_phase:
                took = f"  (+{now - self.phase_started[phase]:.1f}s)"
            else:
                if self.current_phase in self.phase_started:
                    took = f"  ({self.current_phase} took {now - self.phase_started[self.current_phase]:.1f}s)"
                self.current_phase = phase
                self.phase_started[phase] = now
            extra = " ".join(f"{k}={visible(event[k])}" for k in ("branch", "commit", "hash") if event.get(k))
            self._line(f"{stamp} {self._c('▶ ' + phase, '1;34')}  {visible(event.get('message', ''))}"
                       f"{'  ' + extra if extra else ''}{took}")
        elif kind == "tool_start":
            self.tools_started += 1
            self._line(f"{stamp}   {self._c('⋯ ' + visible(event.get('tool')), '36')} started {self._tally()}")
        elif kind == "log":
            if self.show_logs:
                self._line(f"{stamp}     {visible(event.get('tool', ''))} | {visible(event.get('line', ''))}")
        elif kind == "tool_complete":
            self.tools_done += 1
            findings = visible(event.get("findings", 0))
            mark = self._c("✓", "32") if event.get("exit_code") in (0, 1) else self._c("✗", "31")
            duration = event.get("duration_s")
            took = f" in {duration:.1f}s" if isinstance(duration, int | float) else ""
            self._line(f"{stamp}   {mark} {visible(event.get('tool'))} exit {visible(event.get('exit_code'))}, "
                       f"{findings} findings{took} {self._tally()}")
        elif kind == "error":
            self._line(f"{stamp} {self._c('✗ error', '1;31')} {visible(event.get('code', ''))}: "
                       f"{visible(event.get('message', ''))}")
        elif kind == "upload":
            self._line(f"{stamp} ⇪ upload {visible(event.get('upload_status'))}: {visible(event.get('detail', ''))}")
        elif kind == "scan_complete":
            status = visible(event.get("status"))
            colour = {"SUCCEEDED": "1;32", "FAILED": "1;31"}.get(status, "1;33")
            self._line(f"{stamp} {self._c('■ scan ' + status, colour)}")
            summary = event.get("summary")
            if isinstance(summary, dict):
                self._line("  findings: " + format_counts(summary.get("by_severity", {})))
        else:
            rest = {k: v for k, v in event.items() if k not in ("id", "type")}
            self._line(f"{stamp} {visible(kind)}: {json.dumps(rest)}")


def format_counts(counts: Any) -> str:
    if not isinstance(counts, dict):
        return "none"
    ordered = [s for s in SEVERITY_ORDER if s in counts] + sorted(set(counts) - set(SEVERITY_ORDER))
    return ", ".join(f"{visible(counts[s])} {visible(s)}" for s in ordered if counts[s]) or "none"


def _total(counts: Any) -> int:
    if not isinstance(counts, dict):
        return 0
    return sum(v for v in counts.values() if isinstance(v, int) and not isinstance(v, bool))


def format_diff(diff: Any, baseline: Any = None) -> str | None:
    """The comparison with the baseline on one line, from a summary's ``diff`` (counts by severity
    of ``new``, ``unchanged``, ``fixed`` and perhaps ``updated``) and ``baseline`` (``test_id``,
    ``commit``, ``branch``): ``2 new (1 high, 1 low), 5 fixed, 240 unchanged vs test_… (main @ 1a2b3c4)``.
    None when there is no diff."""
    if not isinstance(diff, dict):
        return None
    new = _total(diff.get("new"))
    parts = [f"{new} new" + (f" ({format_counts(diff.get('new'))})" if new else "")]
    if _total(diff.get("updated")):
        parts.append(f"{_total(diff.get('updated'))} updated")
    parts += [f"{_total(diff.get('fixed'))} fixed", f"{_total(diff.get('unchanged'))} unchanged"]
    line = ", ".join(parts)
    if not isinstance(baseline, dict) or not baseline.get("test_id"):
        return line + " (no baseline: every finding is new)"
    line += f" vs {visible(baseline['test_id'])}"
    branch, commit = baseline.get("branch"), baseline.get("commit")
    where = " @ ".join(w for w in (visible(branch) if branch else "", visible(commit)[:7] if commit else "") if w)
    return line + (f" ({where})" if where else "")
