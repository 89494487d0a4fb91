"""Built-in scan profiles: which tools run, and roughly how long a mid-size repository takes.

The engine runs the tools it has adapters for; a tool that is not installed is reported as
skipped with the reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    tools: tuple[str, ...]
    description: str
    expected_duration: str


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("smoke", ("bandit",), "Quick check: Python SAST only.", "under 10 s"),
        Profile("light", ("bandit", "ruff", "detect-secrets", "osv"),
                "Default: SAST, secrets and known-vulnerable dependencies (local OSV database).", "10-30 s"),
        Profile("standard", ("bandit", "ruff", "detect-secrets", "osv", "sbom", "checkov", "hadolint",
                             "shellcheck", "zizmor"),
                "SAST, secrets, dependencies, CycloneDX + SPDX SBOMs, and IaC/config checks "
                "(checkov, hadolint, shellcheck, zizmor).", "30-90 s"),
        Profile("thorough", ("bandit", "ruff", "semgrep", "detect-secrets", "detect-secrets-history",
                             "osv", "sbom", "checkov", "hadolint", "shellcheck", "zizmor"),
                "Everything, including semgrep and a secrets scan of the git history.", "1-5 min"),
        Profile("sbom", ("sbom",), "SBOM only: CycloneDX and SPDX JSON made by syft.", "under 15 s"),
    )
}

DEFAULT_PROFILE = "light"


def builtin(name: str) -> Profile | None:
    """Profile names match case-insensitively."""
    return BUILTIN_PROFILES.get(name.strip().lower())
