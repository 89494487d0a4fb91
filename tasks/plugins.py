"""Plugins: modules named by the ``PLUGINS`` (API and workers) and ``WORKER_PLUGINS`` (workers only)
settings, imported once at start. Importing one is all it takes: the module registers its source
kinds (``tasks.sources.register``) or publish destinations (``workers.uploads.destinations.register``)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

from tasks.settings import SettingsError

log = logging.getLogger(__name__)


def load(modules: Iterable[str]) -> None:
    """Import each module once; one that cannot be imported stops the process at start."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise SettingsError(f"plugin {name!r} cannot be imported: {exc}") from exc
        log.info("plugin %s loaded", name)
