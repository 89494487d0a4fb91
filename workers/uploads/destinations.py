"""The publish destinations, by name: every permitted upload is published to each of them, one
``uploads.publish`` task per destination.

A destination's name is the one the service uses for it everywhere: the publish task's argument, its
key in ``remote_artifacts``, the ``destination`` of its upload events. Only the Trust request names
it by the contract's own key (``Destination.trust_name``). A plugin (the ``WORKER_PLUGINS`` setting)
registers more with ``register``.
"""

from __future__ import annotations

import re
import threading

from tasks.settings import Settings
from workers.uploads.base import Destination, DestinationFactory
from workers.uploads.datalake import DatalakeDestination
from workers.uploads.oci import OciDestination

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")

_lock = threading.Lock()
_factories: dict[str, DestinationFactory] = {}


def register(name: str, factory: DestinationFactory) -> None:
    """Publish every permitted upload to the destination ``factory`` makes from the settings too."""
    with _lock:
        if not NAME.match(name):
            raise ValueError(f"destination name {name!r} must match {NAME.pattern}")
        if name in _factories:
            raise ValueError(f"destination {name!r} is already registered")
        _factories[name] = factory


def unregister(name: str) -> None:
    """Stop publishing to a destination (a test's own, once the test is done)."""
    with _lock:
        _factories.pop(name, None)


def names() -> tuple[str, ...]:
    """Every destination, the service's own first, then in the order they were registered."""
    return tuple(_factories)


def build(settings: Settings) -> dict[str, Destination]:
    """Every destination, made from ``settings`` (none builds a client before its first publish)."""
    with _lock:
        factories = dict(_factories)
    made = {name: factory(settings) for name, factory in factories.items()}
    trust_names = [d.trust_name for d in made.values()]
    if len(set(trust_names)) != len(trust_names):
        raise ValueError(f"two destinations share a Trust name: {trust_names}")
    return made


# The service's own. A new destination: its module in workers/uploads/ and one line here.
register("s3", DatalakeDestination)
register("oci", OciDestination)
