"""The scanners the engine knows, by id."""

from __future__ import annotations

from tasks.settings import Settings
from workers.scanners.bandit import Bandit
from workers.scanners.base import Scanner
from workers.scanners.checkov import Checkov
from workers.scanners.hadolint import Hadolint
from workers.scanners.osv import Osv
from workers.scanners.sbom import Sbom
from workers.scanners.shellcheck import Shellcheck
from workers.scanners.zizmor import Zizmor


def all_scanners(settings: Settings | None = None) -> dict[str, Scanner]:
    settings = settings or Settings()
    scanners: list[Scanner] = [Bandit(), Osv(settings.osv_db_path), Sbom(), Checkov(), Hadolint(),
                               Shellcheck(), Zizmor()]
    return {s.id: s for s in scanners}
