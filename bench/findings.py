"""The findings store: recording a scan of 5,000 findings and diffing two such scans, on SQLite and on
PostgreSQL; then the listing (``list_findings``, what ``GET /v1/findings`` runs) with 1,000,000
findings stored in PostgreSQL, a mix of filters and pages, at p50/p99.

PostgreSQL is a server of the benchmark's own (tests/support/postgres.py: the pgserver wheel's
binaries, a temporary folder, a loopback port) with fsync on, as in production. The million
findings are synthetic (200 components of 5,000, made by the server from ``generate_series``): a
realistic mix of severities, states (some accepted risks expired), tools and paths.

``python -m bench --only findings``; alone: ``python -m bench.findings [--quick]``.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.stats import percentile
from tasks.db import make_engine, upgrade
from tasks.findings import FindingFilter, FindingInput, FindingState, ScanInfo
from tasks.findings_store import FindingsStore
from tasks.states import ScanStatus, Severity
from tests.support.postgres import PostgresServer

TARGETS = {
    "record_s_sqlite": ("<=", 1.0),
    "record_s_postgresql": ("<=", 1.0),
    "record_s_postgresql_1m": ("<=", 1.0),
    "diff_ms_sqlite": ("<=", 200.0),
    "diff_ms_postgresql": ("<=", 200.0),
    "list_p99_ms_postgresql_1m": ("<=", 50.0),
}

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOOLS = ("bandit", "ruff", "semgrep", "osv", "checkov", "detect-secrets")
# Of 100 findings: 3 critical, 15 high, 35 medium, 35 low, 12 info.
_RANKS = [0] * 3 + [1] * 15 + [2] * 35 + [3] * 35 + [4] * 12
SEVERITIES = list(Severity)


def synthetic(n: int, offset: int = 0, seed: int = 1) -> list[FindingInput]:
    """``n`` findings of one scan; ``offset`` shifts which ones (a later scan fixes some, adds some)."""
    rnd = random.Random(seed)
    out = []
    for i in range(offset, offset + n):
        tool = TOOLS[i % len(TOOLS)]
        out.append(FindingInput(
            fingerprint=f"{i:064x}", tool=tool, rule_id=f"{tool[:2].upper()}{i % 150:03d}",
            severity=SEVERITIES[_RANKS[i % 100]], path=f"src/pkg{i % 40}/mod{i % 400}.py", line=1 + rnd.randrange(900),
            message=f"synthetic finding {i}: user input reaches a dangerous call", cwe=f"CWE-{i % 90}"))
    return out


def _scan(test_id: str, hours: int, baseline: str | None, component: str = "billing") -> ScanInfo:
    return ScanInfo(test_id=test_id, workspace_id="bench", component_id=component, status=ScanStatus.SUCCEEDED,
                    created_at=T0 + timedelta(hours=hours), branch="main", commit=f"{hours:040x}",
                    baseline_test_id=baseline, on_baseline_branch=True)


def _timed(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def record_and_diff(url: str, reps: int, size: int = 5000) -> dict[str, float]:
    """Record ``reps`` + 1 scans of ``size`` findings in a row (2 % fixed and 2 % new each time,
    each against the one before), then diff the first and the last ``reps`` times."""
    upgrade(url)
    store = FindingsStore(make_engine(url))
    try:
        churn = size // 50
        findings = synthetic(size)
        first = _timed(lambda: store.record_scan(_scan("test_bench_0", 0, None), findings))
        records = []
        for k in range(1, reps + 1):
            scan, findings = _scan(f"test_bench_{k}", k, f"test_bench_{k - 1}"), synthetic(size, k * churn)
            t0 = time.perf_counter()
            store.record_scan(scan, findings)
            records.append(time.perf_counter() - t0)
        last = f"test_bench_{reps}"
        diffs = [_timed(lambda: store.diff("test_bench_0", last)) for _ in range(max(reps, 5))]
        return {"record_first_s": first, "record_s": statistics.median(records), "record_max_s": max(records),
                "diff_ms": statistics.median(diffs) * 1000, "diff_max_ms": max(diffs) * 1000}
    finally:
        store.close()


POPULATE = [
    """INSERT INTO scans (test_id, workspace_id, component_id, branch, commit_sha, status, created_at, recorded_at,
                          finding_count)
       SELECT 'test_pop_' || c, 'bench', 'comp-' || c, 'main', md5(c::text), 'SUCCEEDED',
              :t0 + c * interval '1 minute', :t0 + c * interval '1 minute', :per
       FROM generate_series(1, :components) AS c""",
    """INSERT INTO findings (workspace_id, component_id, fingerprint, tool, rule_id, severity, severity_rank, path,
                             line, message, cwe, state, triage_reason, triage_owner, expires_at, triaged_by,
                             triaged_at, first_seen_scan_id, last_seen_scan_id)
       SELECT 'bench', s.component_id, md5(s.component_id || ':' || i), t.tool, upper(left(t.tool, 2)) || (i % 150),
              r.sev, r.rank, 'src/pkg' || (i % 40) || '/mod' || (i % 400) || '.py', 1 + i % 900,
              'synthetic finding ' || i || ': user input reaches a dangerous call', 'CWE-' || (i % 90), st.state,
              CASE WHEN st.state IN ('false_positive', 'accepted_risk') THEN 'bench triage' END,
              CASE WHEN st.state = 'accepted_risk' THEN 'owner' END,
              CASE WHEN st.state = 'accepted_risk' THEN :t0 + ((i % 2) * 2 - 1) * interval '30 days' END,
              CASE WHEN st.state IN ('false_positive', 'accepted_risk') THEN 'bench' END,
              CASE WHEN st.state IN ('false_positive', 'accepted_risk') THEN :t0 END,
              s.id, s.id
       FROM scans s
       CROSS JOIN generate_series(1, :per) AS i
       CROSS JOIN LATERAL (SELECT (ARRAY['bandit','ruff','semgrep','osv','checkov','detect-secrets'])[1 + i % 6]
                           AS tool) t
       CROSS JOIN LATERAL (SELECT CASE WHEN i % 100 < 3 THEN 0 WHEN i % 100 < 18 THEN 1 WHEN i % 100 < 53 THEN 2
                                       WHEN i % 100 < 88 THEN 3 ELSE 4 END AS rank) r0
       CROSS JOIN LATERAL (SELECT r0.rank, (ARRAY['critical','high','medium','low','info'])[1 + r0.rank] AS sev) r
       CROSS JOIN LATERAL (SELECT CASE WHEN i % 100 < 80 THEN 'open' WHEN i % 100 < 90 THEN 'false_positive'
                                       WHEN i % 100 < 97 THEN 'accepted_risk' ELSE 'fixed' END AS state) st
       WHERE s.test_id LIKE 'test_pop_%'""",
    """INSERT INTO finding_sources (finding_id, tool, rule_id)
       SELECT id, tool, rule_id FROM findings WHERE workspace_id = 'bench'
       UNION ALL
       SELECT id, 'semgrep', 'python.lang.security.' || rule_id FROM findings
       WHERE workspace_id = 'bench' AND tool = 'bandit' AND id % 3 = 0""",
    """INSERT INTO scan_findings (scan_id, finding_id, severity, line)
       SELECT first_seen_scan_id, id, severity, line FROM findings WHERE workspace_id = 'bench'""",
]


def populate(url: str, components: int, per: int) -> float:
    engine = make_engine(url)
    try:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            for statement in POPULATE:
                conn.execute(text(statement), {"components": components, "per": per, "t0": T0})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return time.perf_counter() - t0
    finally:
        engine.dispose()


def list_latency(store: FindingsStore, components: int, queries: int) -> dict[str, Any]:
    """Latency of ``list_findings`` (50 a page) for random components, with a mix of the filters
    a page and a CLI send: none, open only, open high and critical, a tool, a path, a text, a
    rule, and the second page of each."""
    rnd = random.Random(7)
    open_only = frozenset({FindingState.OPEN})
    mix: list[tuple[str, Callable[[], FindingFilter]]] = [
        ("all", lambda: FindingFilter()),
        ("open", lambda: FindingFilter(states=open_only)),
        ("open_high", lambda: FindingFilter(states=open_only,
                                            severities=frozenset({Severity.CRITICAL, Severity.HIGH}))),
        ("tool", lambda: FindingFilter(tool=rnd.choice(TOOLS))),
        ("path", lambda: FindingFilter(path_prefix=f"src/pkg{rnd.randrange(40)}/")),
        ("text", lambda: FindingFilter(text=f"mod{rnd.randrange(400)}.py")),
        ("rule", lambda: FindingFilter(rule=f"BA{rnd.randrange(150)}")),
        ("accepted", lambda: FindingFilter(states=frozenset({FindingState.ACCEPTED_RISK}))),
    ]
    per_kind: dict[str, list[float]] = {name: [] for name, _ in mix}
    every: list[float] = []
    for n in range(queries):
        name, make = mix[n % len(mix)]
        component = f"comp-{1 + rnd.randrange(components)}"
        filters = make()
        t0 = time.perf_counter()
        page = store.list_findings("bench", component, filters, limit=50)
        every.append(time.perf_counter() - t0)
        per_kind[name].append(every[-1])
        if page.next_cursor is not None:
            t0 = time.perf_counter()
            store.list_findings("bench", component, filters, page.next_cursor, limit=50)
            every.append(time.perf_counter() - t0)
            per_kind[name].append(every[-1])
    return {"p50_ms": percentile(every, 50) * 1000, "p99_ms": percentile(every, 99) * 1000, "queries": len(every),
            "by_filter_p99_ms": {k: round(percentile(v, 99) * 1000, 2) for k, v in per_kind.items()}}


def run(quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 10
    components, per = (20, 5000) if quick else (200, 5000)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="certus-bench-") as folder:
        for key, value in record_and_diff(f"sqlite:///{Path(folder) / 'findings.db'}", reps).items():
            out[f"{key}_sqlite"] = value
    with PostgresServer(durable=True) as server:
        for key, value in record_and_diff(server.create_database("bench_small"), reps).items():
            out[f"{key}_postgresql"] = value
        url = server.create_database("bench_1m")
        upgrade(url)
        out["populate_s"] = populate(url, components, per)
        out["findings_stored"] = components * per
        store = FindingsStore(make_engine(url), clock=lambda: T0)
        try:
            # A 5,000-finding scan recorded into the full store: a component seen before, against its baseline.
            churn = 100
            base = _scan("test_pop_big_0", 10_000, None, component="comp-big")
            store.record_scan(base, synthetic(5000))
            times = []
            for k in range(1, reps + 1):
                scan = _scan(f"test_pop_big_{k}", 10_000 + k, f"test_pop_big_{k - 1}", component="comp-big")
                findings = synthetic(5000, k * churn)
                t0 = time.perf_counter()
                store.record_scan(scan, findings)
                times.append(time.perf_counter() - t0)
            out["record_s_postgresql_1m"] = statistics.median(times)
            listing = list_latency(store, components, 200 if quick else 2000)
        finally:
            store.close()
        out["list_p50_ms_postgresql_1m"] = listing["p50_ms"]
        out["list_p99_ms_postgresql_1m"] = listing["p99_ms"]
        out["list_queries"] = listing["queries"]
        out["list_by_filter_p99_ms"] = listing["by_filter_p99_ms"]
    return out


if __name__ == "__main__":  # pragma: no cover - run by hand
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
