"""Resolve the manifest a scan runs with, and the profile it selects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tasks import manifest as manifests
from tasks.profiles import builtin
from tasks.settings import Settings


@dataclass
class ResolvedManifest:
    text: str
    digest: str
    parsed: manifests.Manifest | None
    profile_requested: str
    profile_resolved: str
    tools: list[str]
    tool_config: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)
    ceiling_minutes: int | None = None
    source: str = "builtin"
    unsupported: list[str] = field(default_factory=list)
    signature_verified: bool = False

    @property
    def info(self) -> dict[str, Any]:
        return {
            "product": self.parsed.product if self.parsed else None,
            "version": self.parsed.version if self.parsed else None,
            "owners": list(self.parsed.owners) if self.parsed else [],
            "source": self.source,
            "profile_requested": self.profile_requested,
            "profile_resolved": self.profile_resolved,
            "tools_selected": self.tools,
            "unsupported_manifest_tools": self.unsupported,
            "policy_thresholds": self.thresholds,
            "runtime_ceiling_minutes": self.ceiling_minutes,
            "manifest_digest": self.digest,
        }


def resolve_manifest(record: dict[str, Any], settings: Settings) -> ResolvedManifest:
    requested = record["profile"]
    if record.get("manifest") is not None:
        text = manifests.inline_text(record["manifest"])
        parsed: manifests.Manifest | None = manifests.parse(record["manifest"])
        source = "inline"
    else:
        parsed = None
        source = "builtin"
        text = ""
    return select_profile(text, parsed, requested, source)


def select_profile(text: str, parsed: manifests.Manifest | None, requested: str,
                   source: str) -> ResolvedManifest:
    """The manifest's profile of that name wins; one with no tools falls back to the built-in."""
    tools: list[str] = []
    config: dict[str, Any] = {}
    thresholds: dict[str, int] = {}
    resolved = requested.strip().lower()
    mprof = parsed.profile(requested) if parsed else None
    if mprof is not None:
        tools = list(mprof.tools)
        config = dict(mprof.tool_config)
        thresholds = dict(mprof.thresholds)
        resolved = f"manifest:{mprof.name}"
    base = builtin(requested)
    if not tools:
        if base is None:
            raise manifests.ManifestInvalid({"profile": [f"profile {requested!r} defines no tools and "
                                                         "there is no built-in profile of that name"]})
        tools = list(base.tools)
        resolved = base.name
    if not text:
        # No manifest given: record the built-in profile that ran, so the bundle says what was used.
        text = json.dumps({"profiles": [{"name": resolved, "tools": tools}]}, sort_keys=True)
    return ResolvedManifest(text=text, digest=manifests.digest(text), parsed=parsed,
                            profile_requested=requested, profile_resolved=resolved, tools=tools,
                            tool_config=config, thresholds=thresholds,
                            ceiling_minutes=parsed.runtime_ceiling_minutes if parsed else None, source=source)
