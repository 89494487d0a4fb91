"""The scanners the engine knows, by id."""

from __future__ import annotations

from workers.scanners.bandit import Bandit
from workers.scanners.base import Scanner


def all_scanners() -> dict[str, Scanner]:
    scanners: list[Scanner] = [Bandit()]
    return {s.id: s for s in scanners}
