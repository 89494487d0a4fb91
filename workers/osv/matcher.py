"""Matches an inventory of pinned dependencies against the local OSV database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.osv import severity
from workers.osv.database import Database
from workers.osv.lockfiles import Dependency, inventory
from workers.osv.versions import fixed_versions, is_affected, normalise_name


def match(db: Database, deps: list[Dependency]) -> list[dict[str, Any]]:
    """One entry per (dependency occurrence, advisory)."""
    found = []
    cache: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for dep in deps:
        key = (dep.ecosystem, normalise_name(dep.ecosystem, dep.name))
        if key not in cache:
            cache[key] = list(db.advisories(dep.ecosystem, dep.name))
        for adv in cache[key]:
            for affected in adv.get("affected") or []:
                pkg = affected.get("package") or {}
                if pkg.get("ecosystem") != dep.ecosystem or \
                        normalise_name(dep.ecosystem, str(pkg.get("name", ""))) != key[1]:
                    continue
                if not is_affected(dep.ecosystem, dep.version, affected):
                    continue
                found.append({
                    "id": adv["id"],
                    "aliases": sorted(adv.get("aliases") or []),
                    "summary": adv.get("summary") or _first_sentence(adv.get("details", "")),
                    "modified": adv.get("modified"),
                    "ecosystem": dep.ecosystem,
                    "package": dep.name,
                    "version": dep.version,
                    "fixed": fixed_versions(affected),
                    "path": dep.path,
                    "line": dep.line,
                    "snippet": dep.snippet,
                    **{f"severity_{k}" if k != "severity" else k: v
                       for k, v in severity.assess(adv, affected).items()},
                })
                break
    return found


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    cut = text.find(". ")
    return (text[: cut + 1] if 0 < cut < 240 else text[:240]).strip()


def scan(source: Path, db_path: Path) -> dict[str, Any]:
    db = Database.open(db_path)
    inv = inventory(source)
    vulns = match(db, inv.dependencies)
    skipped_ecosystems = sorted({d.ecosystem for d in inv.dependencies} - set(db.ecosystems))
    return {
        "database": db.describe(),
        "lock_files": inv.files,
        "dependencies": len(inv.dependencies),
        "unpinned": inv.unpinned,
        "parse_errors": inv.errors,
        "ecosystems_without_data": skipped_ecosystems,
        "vulnerabilities": vulns,
    }
