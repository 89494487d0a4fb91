"""A worker keeps its messages when the broker's Redis goes away and comes back.

When a worker's broker connection drops, Celery collects the connection (which detaches kombu's
Redis transport from it) and then closes it. If a BRPOP was pending when Redis went away (a worker
with a free pool slot always has one), closing the channel the first time stops at that read, so
the second close reaches the channel's unacknowledged-message restore with a transport that no
longer knows its broker: kombu builds the new Redis client from ``transport.client``, which is
None by then, and the ``AttributeError`` it raises is not a connection error, so Celery lets it
end the worker. Acknowledging a task that finishes after the reconnect fails the same way on its
closed channel.

``install()`` changes three things in kombu's Redis transport, in the worker only:

* a channel remembers the broker it was opened on, and builds its Redis clients from that once
  its transport has been detached, so restoring and acknowledging on a closed channel work;
* on a connection loss the restore leaves the messages of running tasks where they are (in the
  broker's unacked set): each is acknowledged by its task when it ends, instead of being handed
  out again while it runs. At shutdown everything is restored, as before;
* a restore that cannot reach Redis (it is why the connection dropped) does not raise: its
  messages stay in the unacked set, and are restored once the worker has connected again (the
  ``RestoreStranded`` consumer step). None is lost; a worker that dies before that leaves them to
  the visibility timeout and the sweeper.

And a full Redis (``maxmemory`` reached with ``noeviction``) no longer ends the worker, which
kombu made it do twice: Redis refuses every command queued in a transaction then, so

* acknowledging a message (ZREM and HDEL in a transaction) is done again with the two commands on
  their own, which Redis accepts when full (they free memory);
* a message taken from its queue that cannot be recorded as unacknowledged (ZADD and HSET, refused)
  is kept in the worker, which stops consuming (as on a lost connection) and puts it back at the
  head of its queue as soon as Redis accepts writes again; a restore refused for memory waits the
  same way. Until then the worker reconnects every few seconds and takes nothing new;
* the worker connects only to a Redis that accepts writes: while it is full, each attempt waits a
  few seconds and tries again (``Consumer.connect`` probes with a short-lived key), so the
  consumer's start (queue declarations, transactions Redis would refuse) never meets a full Redis;
  the periodic restore of timed-out messages (a lock, a write) waits for memory instead of failing.
  Any other refusal of Redis's reaching the consumer reconnects it instead of ending the worker
  (``broker_channel_error_retry``, set in ``tasks/celery_app.py``).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import redis
from celery import bootsteps
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

log = logging.getLogger(__name__)

# Messages whose restore could not reach the broker: (the QoS that delivered them, delivery tag).
_stranded: list[tuple[Any, str]] = []
# Messages taken from a queue while Redis was full: (channel, payload, exchange, routing key).
_unplaced: list[tuple[Any, dict[str, Any], str, str]] = []
# How long the consumer waits before trying again while Redis is full.
FULL_PAUSE_SECONDS = 2.0
# A short-lived key the consumer writes to learn whether Redis accepts writes.
WRITABLE_PROBE_KEY = "certus:broker:writable"


class BrokerFull(redis.ConnectionError):
    """Redis refused a write for memory: the consumer stops as on a lost connection."""


def _running_tags() -> set[str]:
    """Delivery tags of the tasks this worker runs now; none once it is shutting down."""
    from celery.worker import state

    if state.should_stop not in (None, False) or state.should_terminate not in (None, False):
        return set()
    tags = set()
    for request in list(state.active_requests):
        tag = getattr(request.message, "delivery_tag", None)
        if tag:
            tags.add(tag)
    return tags


def install() -> None:
    """Patch kombu's Redis channel and QoS (idempotent)."""
    channel_cls: Any = kombu_redis.Channel
    qos_cls: Any = kombu_redis.QoS
    if getattr(channel_cls, "_certus_recovery", False):
        return
    channel_init = channel_cls.__init__
    create_client = channel_cls._create_client

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        transport = args[0] if args else kwargs["connection"]
        self._opened_on = SimpleNamespace(client=transport.client, default_port=transport.default_port,
                                          cycle=None)
        channel_init(self, *args, **kwargs)

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is not None and transport.client is not None:
            return create_client(self, asynchronous)
        # The connection was closed under this channel: reach the broker it was opened on.
        self.connection = self._opened_on
        try:
            return create_client(self, asynchronous)
        finally:
            self.connection = transport

    def restore_unacked(self: Any, client: Any = None) -> None:
        running = _running_tags()
        tags = [tag for tag in self._delivered if tag not in running]
        if running & set(self._delivered):
            log.info("broker connection lost: %d message(s) of running tasks stay unacknowledged until "
                     "their tasks end", len(running & set(self._delivered)))
        try:
            with self.channel.conn_or_acquire(client) as conn:
                while tags:
                    self.restore_by_tag(tags[0], client=conn)
                    tags.pop(0)
        except (*self.channel.connection_errors, redis.OutOfMemoryError) as exc:
            log.warning("the broker is unreachable (%s): %d unacknowledged message(s) stay in its unacked "
                        "set and are restored once the worker is connected again",
                        exc.__class__.__name__, len(tags))
            _stranded.extend((self, tag) for tag in tags)
        self._delivered.clear()

    qos_append = qos_cls.append
    qos_ack = qos_cls.ack

    def append(self: Any, message: Any, delivery_tag: str) -> None:
        try:
            qos_append(self, message, delivery_tag)
        except redis.OutOfMemoryError as exc:
            delivery = message.delivery_info
            _unplaced.append((self.channel, message._raw, delivery["exchange"], delivery["routing_key"]))
            log.warning("Redis is full (maxmemory): a message taken from its queue could not be recorded as "
                        "unacknowledged; the worker keeps it, stops taking work and puts it back once Redis "
                        "accepts writes")
            raise BrokerFull("Redis is full (maxmemory reached)") from exc

    def ack(self: Any, delivery_tag: str) -> None:
        try:
            qos_ack(self, delivery_tag)
        except redis.OutOfMemoryError:
            # A full Redis refuses a transaction, not these two commands on their own.
            with self.channel.conn_or_acquire() as conn:
                conn.zrem(self.unacked_index_key, delivery_tag)
                conn.hdel(self.unacked_key, delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    qos_restore_visible = qos_cls.restore_visible

    def restore_visible(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            qos_restore_visible(self, *args, **kwargs)
        except redis.OutOfMemoryError:
            log.debug("Redis is full: the periodic restore of timed-out messages waits")

    channel_cls.__init__ = __init__
    channel_cls._create_client = _create_client
    qos_cls.restore_unacked = restore_unacked
    qos_cls.restore_visible = restore_visible
    qos_cls.append = append
    qos_cls.ack = ack
    channel_cls._certus_recovery = True


def install_connect_probe() -> None:
    """The worker's consumer connects only once Redis accepts writes (idempotent)."""
    from celery.worker.consumer.consumer import Consumer
    from kombu.common import ignore_errors

    consumer_cls: Any = Consumer
    if getattr(consumer_cls, "_certus_probe", False):
        return
    connect = consumer_cls.connect

    def connect_when_writable(self: Any) -> Any:
        conn = connect(self)
        channel = conn.default_channel
        if isinstance(channel, kombu_redis.Channel):
            try:
                with channel.conn_or_acquire() as client:
                    client.set(WRITABLE_PROBE_KEY, "1", px=2000)
            except redis.OutOfMemoryError as exc:
                ignore_errors(conn, conn.close)
                log.warning("Redis is full (maxmemory): the worker takes no work; trying again in %.0f s",
                            FULL_PAUSE_SECONDS)
                time.sleep(FULL_PAUSE_SECONDS)
                raise BrokerFull("Redis is full (maxmemory reached)") from exc
        return conn

    consumer_cls.connect = connect_when_writable
    consumer_cls._certus_probe = True


def put_back_unplaced() -> int:
    """Put the messages taken while Redis was full back at the head of their queues."""
    placed = 0
    while _unplaced:
        channel, payload, exchange, routing_key = _unplaced[0]
        with channel.conn_or_acquire() as conn:
            pipe = conn.pipeline()
            channel._do_restore_message(payload, exchange, routing_key, pipe)
            pipe.execute()
        _unplaced.pop(0)
        placed += 1
    if placed:
        log.info("put %d message(s) taken while Redis was full back on their queues", placed)
    return placed


def restore_stranded() -> int:
    """Restore the messages a broken connection left behind (those whose task is not running)."""
    running = _running_tags()
    pending, _stranded[:] = list(_stranded), []
    restored = 0
    for index, (qos, tag) in enumerate(pending):
        if tag in running:
            continue  # its task started meanwhile and acknowledges it
        try:
            qos.restore_by_tag(tag)
        except (*qos.channel.connection_errors, redis.OutOfMemoryError):
            _stranded.extend(pending[index:])
            break
        restored += 1
    if restored:
        log.info("restored %d message(s) left unacknowledged by a lost broker connection", restored)
    return restored


class RestoreStranded(bootsteps.StartStopStep):
    """A consumer step: each time the worker has connected to the broker, put back what a full
    Redis left in the worker and restore what a lost connection left behind. While Redis still
    refuses the writes, the consumer does not start: it pauses, then connects again."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        try:
            put_back_unplaced()
        except redis.OutOfMemoryError:
            pass
        if _stranded:
            restore_stranded()
        if _unplaced or _stranded:
            log.warning("Redis refuses writes (full?): %d message(s) wait to be put back on their queues; "
                        "trying again in %.0f s", len(_unplaced) + len(_stranded), FULL_PAUSE_SECONDS)
            time.sleep(FULL_PAUSE_SECONDS)
            raise BrokerFull("Redis refuses writes (maxmemory reached?)")
