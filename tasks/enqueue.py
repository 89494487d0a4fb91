"""A Celery task message, ready to be pushed onto a Redis queue by the same Lua step that writes
the scan's record.

The message is Celery's own: protocol 2 headers and body from ``app.amqp.create_task_message``
(what ``send_task`` builds), serialized by kombu, in the envelope that kombu's Redis transport
pushes onto a queue's list. Enqueuing it inside the record's script means a scan and its task
appear together or not at all, in one round trip; a worker cannot pick up a task whose record is
not there yet, and a crash between the two writes cannot leave a queued scan with no task.

``usable`` says when this applies: a real Celery app whose broker is the store's Redis. Anything
else (another broker, a test double) goes through ``send_task``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps

from tasks.settings import Settings

# What kombu's Producer and Redis channel put in every message's properties (kombu.messaging,
# kombu.transport.virtual): persistent delivery, the default priority, a base64 body.
_PERSISTENT = 2
_DEFAULT_PRIORITY = 0


@dataclass(frozen=True)
class QueuedTask:
    """A serialized task and the Redis list it goes onto."""

    queue: str
    payload: str


def usable(celery: Any, settings: Settings) -> bool:
    return isinstance(celery, Celery) and settings.broker_is_store


def build(celery: Celery, name: str, task_id: str, args: list[Any], queue: str) -> QueuedTask:
    """The message ``celery.send_task(name, args=args, task_id=task_id, queue=queue)`` would push."""
    # The reprs are what Celery's saferepr gives for short plain arguments, without its cost.
    headers, properties, body, _ = celery.amqp.create_task_message(
        task_id, name, args, {}, reply_to=celery.thread_oid,
        create_sent_event=False, ignore_result=None, argsrepr=repr(args), kwargsrepr="{}")
    content_type, content_encoding, data = serialize(body, serializer=celery.conf.task_serializer)
    raw = data if isinstance(data, bytes) else data.encode(content_encoding)
    envelope = {
        "body": base64.b64encode(raw).decode("ascii"),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": _PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": _DEFAULT_PRIORITY,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return QueuedTask(queue, json_dumps(envelope))
