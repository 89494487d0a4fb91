"""A benchmark-only worker whose one scanner waits instead of computing, so scale-out is measured
without the two cores being the limit. Start with ``celery -A bench.sleep_worker worker``."""

from __future__ import annotations

import os

from tasks import scan_tasks
from tasks.celery_app import create_celery
from tasks.logconfig import configure_logging
from tasks.redis_client import connect
from tasks.settings import Settings
from workers import presence
from workers.engine import ScanEngine
from workers.scanners.base import Scanner, ToolContext, ToolOutput
from workers.sources.git import install_spares
from workers.toolrun import ProcessResult

SLEEP_SECONDS = float(os.environ.get("BENCH_SLEEP_SECONDS", "2"))


class SleepScanner(Scanner):
    id = "bandit"  # stands in for the smoke profile's one tool

    def unavailable_reason(self) -> str | None:
        return None

    def version(self) -> str:
        return "bench"

    def command(self, ctx: ToolContext) -> list[str]:
        return ["sleep", str(SLEEP_SECONDS)]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        return ToolOutput(findings=[])


settings = Settings.from_env()
configure_logging(settings)
app = create_celery(settings)
scan_tasks.register(app)
app.certus_engine = ScanEngine(  # type: ignore[attr-defined,unused-ignore]
    settings, connect(settings.redis_url), scanners={"bandit": SleepScanner()})
presence.install()
install_spares(app)  # as the real worker does
