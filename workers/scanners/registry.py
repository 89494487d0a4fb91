"""The scanners the engine knows, by id."""

from __future__ import annotations

from tasks.settings import Settings
from workers.scanners.bandit import Bandit
from workers.scanners.base import Scanner
from workers.scanners.checkov import Checkov
from workers.scanners.detect_secrets_scan import DetectSecrets, DetectSecretsHistory
from workers.scanners.hadolint import Hadolint
from workers.scanners.osv import Osv
from workers.scanners.ruff_security import RuffSecurity
from workers.scanners.sbom import Sbom
from workers.scanners.semgrep import Semgrep
from workers.scanners.shellcheck import Shellcheck
from workers.scanners.zizmor import Zizmor


def all_scanners(settings: Settings | None = None) -> dict[str, Scanner]:
    settings = settings or Settings()
    scanners: list[Scanner] = [Bandit(), RuffSecurity(), Semgrep(), DetectSecrets(), DetectSecretsHistory(),
                               Osv(settings.osv_db_path), Sbom(), Checkov(), Hadolint(), Shellcheck(), Zizmor()]
    return {s.id: s for s in scanners}


def needs_history(scanner: Scanner) -> bool:
    """A scanner that reads earlier commits sets ``needs_history = True``; the engine then clones
    the whole history instead of the branch tip alone."""
    return bool(getattr(scanner, "needs_history", False))
