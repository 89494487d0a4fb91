"""The scanners the engine knows, by id. A new scanner: its adapter module in workers/scanners/ (a
subclass of ``Scanner``) and one entry in the list below."""

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

