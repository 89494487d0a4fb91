"""kombu's Redis channel with ``tasks.broker_recovery`` installed, against a real Redis that is
stopped and started again, or full (``maxmemory`` below what it holds, ``noeviction``): what a
worker holds unacknowledged is neither lost nor fatal.

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
        broker_recovery._unplaced.clear()


def fill(url: str) -> redis.Redis:
    """Make Redis full: every write that needs memory is refused (noeviction)."""
    client = redis.Redis.from_url(url)
    client.config_set("maxmemory", 1)
    with pytest.raises(redis.OutOfMemoryError):
        client.set("probe", "x")
    return client


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


def test_a_full_redis_still_takes_acknowledgements(server):
    _, message = deliver(server.url)
    client = fill(server.url)
    message.ack()  # without the fix: OutOfMemoryError, which ended the worker
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_a_message_taken_while_redis_is_full_is_kept_and_put_back_at_the_head(server):
    with Connection(server.url) as producer:
        for n in (1, 2):
            Producer(producer).publish({"scan": n}, exchange=QUEUE.exchange, routing_key="scans", declare=[QUEUE])
    conn = Connection(server.url)
    got: list = []
    Consumer(conn.default_channel, [QUEUE], callbacks=[lambda body, msg: got.append(body)],
             accept=["json"]).consume()
    client = fill(server.url)
    with pytest.raises(broker_recovery.BrokerFull):
        conn.drain_events(timeout=10)  # a lost connection to Celery: it stops consuming
    assert got == [] and client.llen("scans") == 1 and len(broker_recovery._unplaced) == 1
    with pytest.raises(redis.OutOfMemoryError):
        broker_recovery.put_back_unplaced()  # still full: kept
    assert len(broker_recovery._unplaced) == 1
    client.config_set("maxmemory", 0)
    assert broker_recovery.put_back_unplaced() == 1
    with Connection(server.url) as again:
        bodies: list = []
        Consumer(again.default_channel, [QUEUE], callbacks=[lambda body, msg: (bodies.append(body), msg.ack())],
                 accept=["json"]).consume()
        again.drain_events(timeout=10)
        again.drain_events(timeout=10)
    assert bodies == [{"scan": 1}, {"scan": 2}]  # put back first in line
    assert client.hlen("unacked") == 0


def test_a_restore_refused_for_memory_waits_for_memory(server):
    conn, _ = deliver(server.url)
    client = fill(server.url)
    conn.default_channel.qos.restore_unacked()
    assert len(broker_recovery._stranded) == 1 and client.hlen("unacked") == 1
    client.config_set("maxmemory", 0)
    assert broker_recovery.restore_stranded() == 1
    assert client.hlen("unacked") == 0 and client.llen("scans") == 1
