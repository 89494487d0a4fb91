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
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from celery import bootsteps
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

# Messages whose restore could not reach the broker: (the QoS that delivered them, delivery tag).
_stranded: list[tuple[Any, str]] = []


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
        except self.channel.connection_errors as exc:
            log.warning("the broker is unreachable (%s): %d unacknowledged message(s) stay in its unacked "
                        "set and are restored once the worker is connected again",
                        exc.__class__.__name__, len(tags))
            _stranded.extend((self, tag) for tag in tags)
        self._delivered.clear()

    channel_cls.__init__ = __init__
    channel_cls._create_client = _create_client
    qos_cls.restore_unacked = restore_unacked
    channel_cls._certus_recovery = True


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
        except qos.channel.connection_errors:
            _stranded.extend(pending[index:])
            break
        restored += 1
    if restored:
        log.info("restored %d message(s) left unacknowledged by a lost broker connection", restored)
    return restored


class RestoreStranded(bootsteps.StartStopStep):
    """A consumer step: each time the worker has connected to the broker, restore what a lost
    connection left behind."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        if _stranded:
            restore_stranded()
