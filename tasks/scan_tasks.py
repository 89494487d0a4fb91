"""Thin Celery tasks: they take an id and hand it to the engine the worker attached at boot."""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery, Task

from tasks import names


class Engine(Protocol):
    def run_scan(self, test_id: str, *, delivery: dict[str, Any]) -> None: ...


class EngineTask(Task):
    """Base class handing the worker's engine to a task; tests attach a fake engine instead."""

    abstract = True

    @property
    def engine(self) -> Engine:
        engine: Engine | None = getattr(self.app, "certus_engine", None)
        if engine is None:
            raise RuntimeError("no engine attached to this Celery app (start the worker via workers.bootstrap)")
        return engine


def register(app: Celery) -> None:
    settings = app.certus_settings

    @app.task(name=names.SCAN_RUN, base=EngineTask, bind=True,
              soft_time_limit=settings.scan_soft_time_limit, time_limit=settings.scan_hard_time_limit)
    def run_scan(self: EngineTask, test_id: str) -> None:
        delivery = {"redelivered": bool(self.request.delivery_info.get("redelivered")),
                    "retries": self.request.retries, "hostname": self.request.hostname}
        self.engine.run_scan(test_id, delivery=delivery)
