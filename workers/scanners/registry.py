"""The scanners the engine knows, by id."""

from __future__ import annotations

from workers.scanners.bandit import Bandit
from workers.scanners.base import Scanner
from workers.scanners.detect_secrets_scan import DetectSecrets, DetectSecretsHistory
from workers.scanners.ruff_security import RuffSecurity
from workers.scanners.semgrep import Semgrep


def all_scanners() -> dict[str, Scanner]:
    scanners: list[Scanner] = [Bandit(), RuffSecurity(), Semgrep(), DetectSecrets(), DetectSecretsHistory()]
    return {s.id: s for s in scanners}


def needs_history(scanner: Scanner) -> bool:
    """A scanner that reads earlier commits sets ``needs_history = True``; the engine then clones
    the whole history instead of the branch tip alone."""
    return bool(getattr(scanner, "needs_history", False))
