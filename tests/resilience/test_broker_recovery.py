"""kombu's Redis channel with ``tasks.broker_recovery`` installed, against a real Redis that is
stopped and started again: what a worker holds unacknowledged is neither lost nor fatal.

The first test is the failure a worker hit when Redis restarted: after Celery collects the broken
connection (detaching kombu's transport), closing the channel restores its unacknowledged
messages through a transport that no longer knows its broker.
"""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from stack.redis_server import RedisServer
from tasks import broker_recovery

pytestmark = pytest.mark.integration
QUEUE = Queue("scans", Exchange("scans", "direct"), "scans")


@pytest.fixture()
def server(tmp_path):
    broker_recovery.install()
    srv = RedisServer(tmp_path / "redis").start()
    try:
        yield srv
    finally:
        srv.stop()
        broker_recovery._stranded.clear()


def deliver(url: str) -> tuple[Connection, object]:
    """A consumer's connection holding one delivered, unacknowledged message."""
    with Connection(url) as producer:
        Producer(producer).publish({"scan": 1}, exchange=QUEUE.exchange, routing_key="scans", declare=[QUEUE])
    conn = Connection(url)
    got: list = []
    Consumer(conn.default_channel, [QUEUE], callbacks=[lambda body, msg: got.append(msg)],
             accept=["json"]).consume()
    conn.drain_events(timeout=10)
    assert len(got) == 1
    return conn, got[0]


def test_a_channel_closed_after_its_transport_was_detached_restores_its_message(server):
    conn, _ = deliver(server.url)
    channel = conn.default_channel
    conn._do_close_transport()  # what Connection.collect() does after a connection error
    assert channel.connection.client is None
    channel.close()  # without the fix: AttributeError: 'NoneType' object has no attribute 'hostname'
    check = redis.Redis.from_url(server.url)
    assert check.hlen("unacked") == 0 and check.llen("scans") == 1


def test_a_restore_that_cannot_reach_redis_keeps_the_message_and_restores_it_later(server):
    conn, message = deliver(server.url)
    channel = conn.default_channel
    server.stop()
    channel.qos.restore_unacked()  # Redis is gone: nothing raised, nothing dropped
    assert len(broker_recovery._stranded) == 1
    server.start()
    check = redis.Redis.from_url(server.url)
    assert check.hlen("unacked") == 1 and check.llen("scans") == 0  # still in the unacked set (AOF)
    assert broker_recovery.restore_stranded() == 1
    assert check.hlen("unacked") == 0 and check.llen("scans") == 1
    assert not broker_recovery._stranded


class RunningTask:
    """Stands in for the Celery request of a task that is running in the pool."""

    def __init__(self, message: object) -> None:
        self.message = message


def test_a_running_tasks_message_stays_with_it_and_is_acknowledged_on_the_closed_channel(server):
    from celery.worker import state

    conn, message = deliver(server.url)
    channel = conn.default_channel
    running = RunningTask(message)
    state.active_requests.add(running)
    try:
        conn._do_close_transport()
        channel.close()  # the connection is lost while the task runs: its message is not handed out again
        check = redis.Redis.from_url(server.url)
        assert check.hlen("unacked") == 1 and check.llen("scans") == 0
        message.ack()  # the task ends: acknowledged through the closed channel
        assert check.hlen("unacked") == 0 and check.llen("scans") == 0
    finally:
        state.active_requests.discard(running)
