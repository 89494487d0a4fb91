"""The task message the store writes with a scan's record is the one Celery's own send_task pushes."""

from __future__ import annotations

import base64
import json

import pytest

from tasks import enqueue, names
from tasks.celery_app import create_celery
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import QueueFull, ScanStore


def _pop(client, queue):
    raw = client.rpop(queue)
    assert raw is not None, f"nothing on {queue}"
    return json.loads(raw)


def test_the_inline_message_matches_what_send_task_pushes(redis_client, redis_url):
    celery = create_celery(Settings(redis_url=redis_url))
    queue = "test.enqueue." + new_test_id()[5:]
    test_id = new_test_id()
    celery.send_task(names.SCAN_RUN, args=[test_id], task_id=test_id, queue=queue)
    sent = _pop(redis_client, queue)
    built = json.loads(enqueue.build(celery, names.SCAN_RUN, test_id, [test_id], queue).payload)
    # Only the per-message delivery tag differs.
    assert sent["properties"].pop("delivery_tag") != built["properties"].pop("delivery_tag")
    assert built == sent
    assert json.loads(base64.b64decode(built["body"]))[0] == [test_id]


def test_the_store_writes_the_record_and_its_task_together(redis_client, redis_url):
    celery = create_celery(Settings(redis_url=redis_url))
    store = ScanStore(redis_client)
    queue = "test.enqueue." + new_test_id()[5:]
    ws = "ws-enq-" + new_test_id()[5:]

    def record():
        return ScanRecord(test_id=new_test_id(), workspace_id=ws, component_id="c", assessment_id="a",
                          source_type="git", profile="light")

    first = record()
    store.create(first, queue_cap=1, task=enqueue.build(celery, names.SCAN_RUN, first.test_id,
                                                        [first.test_id], queue))
    assert store.get(first.test_id) is not None
    assert _pop(redis_client, queue)["headers"]["id"] == first.test_id
    refused = record()
    with pytest.raises(QueueFull):
        store.create(refused, queue_cap=1, task=enqueue.build(celery, names.SCAN_RUN, refused.test_id,
                                                              [refused.test_id], queue))
    # refused: neither the record nor its task exist
    assert store.get(refused.test_id) is None and redis_client.llen(queue) == 0


def test_inline_enqueue_only_on_the_stores_own_redis(redis_url):
    same = Settings(redis_url=redis_url)
    assert enqueue.usable(create_celery(same), same)
    other = Settings(redis_url=redis_url, broker_url="redis://127.0.0.1:1/0")
    assert not enqueue.usable(create_celery(other), other)
    assert not enqueue.usable(object(), same)  # a test double goes through send_task
