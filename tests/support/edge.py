"""The API edge on the real app (Flask test client) against a real Redis, with Celery replaced by a
recorder of sent tasks: for tests about keys, roles, limits and validation, not the engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from app import create_app
from tasks.api_keys import KeyStore
from tasks.settings import Settings


class SentTasks:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_task(self, name: str, args: Any = None, task_id: str = "", queue: str | None = None,
                  **_: Any) -> None:
        self.sent.append(task_id)


@pytest.fixture()
def edge(redis_url: str, tmp_path: Path) -> Iterator[tuple[Callable[..., Flask], KeyStore, redis.Redis]]:
    """(build an app with settings overrides, the key store, a Redis client) on a flushed database."""
    db = redis_url.rsplit("/", 1)[0] + "/5"
    client = redis.Redis.from_url(db, decode_responses=True)
    client.flushdb()

    def build(**overrides: Any) -> Flask:
        settings = dataclasses.replace(Settings(redis_url=db, artifact_root=str(tmp_path / "a")), **overrides)
        celery = SentTasks()
        app = create_app(settings, celery=celery)
        app.sent = celery.sent  # type: ignore[attr-defined]
        return app

    yield build, KeyStore(client), client
    client.flushdb()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


BODY = {"workspace_id": "ws-a", "component_id": "c", "assessment_id": "a1",
        "git_url": "https://127.0.0.1/org/repo.git"}


def make_app(build: Callable[..., Flask], **over: Any) -> Flask:
    return build(git_allowed_hosts=("127.0.0.1",), **over)


