"""Runs detect-secrets over a checkout or over its git history and writes a report in which no
secret value appears: only the secret's type, its SHA-1 (detect-secrets' own ``hashed_secret``),
where it is, and the source line with the value replaced by ``****``.

Runs as a standalone script under the Python that has detect-secrets (and dulwich, for history):
``python -I secrets_runner.py --mode tree|history --source DIR --out FILE --scratch DIR``. It
imports nothing from the service. It prints counts only, never a finding, so nothing secret can
reach the scan's log stream.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 1_000_000
MASK = "****"
# detect-secrets' inline allowlist comments. The scan does not honour them (a repository must not
# be able to hide a secret with a comment); they are counted and each secret beside one is marked.
ALLOWLIST_FILTER = "detect_secrets.filters.allowlist.is_line_allowlisted"
PRAGMA = re.compile(r"pragma: ?(?:allow|white)list(?:[ -]nextline)?[ -]secret")
# A file name from the history that is safe to reuse for the scratch copy (detect-secrets picks
# some rules by name and extension): one plain component, never '.', '..' or a separator.
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]{1,100}")


def _collection() -> Any:
    from detect_secrets import SecretsCollection

    return SecretsCollection()


def _masked_line(text: str, values: list[str]) -> str | None:
    line = text.strip()
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        line = line.replace(value, MASK)
    # A value we could not find verbatim (escaped, split) must not leak through the line.
    if any(v and v in line for v in values) or not any(v and v in text for v in values):
        return None
    return line[:400] or None


def pragmas(data: bytes) -> int:
    """How many allowlist comments ``data`` holds."""
    if b"pragma" not in data:
        return 0
    return sum(1 for line in data.decode("utf-8", "replace").splitlines() if PRAGMA.search(line))


def _scan(paths: list[str]) -> dict[str, list[Any]]:
    """detect-secrets over ``paths`` (relative to the cwd): {path: [PotentialSecret, ...]}."""
    from detect_secrets.settings import default_settings, get_settings

    found: dict[str, list[Any]] = {}
    with default_settings():
        get_settings().disable_filters(ALLOWLIST_FILTER)
        collection = _collection()
        for path in paths:
            collection.scan_file(path)
        for filename, secret in collection:
            found.setdefault(filename, []).append(secret)
    return found


def _results(root: Path, found: dict[str, list[Any]], shown: dict[str, str] | None = None,
             extra: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One entry per secret; ``shown`` maps a scanned file to the path reported for it."""
    shown = shown or {}
    out = []
    for filename, secrets in found.items():
        try:
            lines = (root / filename).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        by_line: dict[int, list[str]] = {}
        for s in secrets:
            by_line.setdefault(s.line_number, []).append(s.secret_value or "")
        for s in secrets:
            text = lines[s.line_number - 1] if 0 < s.line_number <= len(lines) else ""
            before = lines[s.line_number - 2] if 1 < s.line_number <= len(lines) + 1 else ""
            out.append({
                "path": shown.get(filename, filename),
                "line": s.line_number,
                "type": s.type,
                "hashed_secret": s.secret_hash,
                "snippet": _masked_line(text, by_line[s.line_number]) if text else None,
                "allowlisted": bool(PRAGMA.search(text) or PRAGMA.search(before)),
                **(extra or {}).get(filename, {}),
            })
    return out


def scan_tree(source: Path) -> dict[str, Any]:
    paths = []
    allowlist: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file() or full.stat().st_size > MAX_FILE_BYTES:
                continue
            rel = full.relative_to(source).as_posix()
            paths.append(rel)
            try:
                count = pragmas(full.read_bytes())
            except OSError:
                count = 0
            if count:
                allowlist[rel] = count
    os.chdir(source)
    found = _scan(paths)
    return {"files": len(paths), "results": _results(Path("."), found), "allowlist_comments": allowlist}


def scan_history(source: Path, scratch: Path, max_blobs: int) -> dict[str, Any]:
    """Every file version added or changed in any commit reachable from HEAD is scanned once;
    secrets that the current checkout still holds at the same path are left to the tree scan.

    A path from a commit's tree is never used as a filesystem path: git accepts trees with
    entries such as '..' or absolute-looking names (only a checkout refuses them), so each version
    is written to ``<scratch>/blobs/<blob id>/<name>``, where ``<name>`` is the file's own name
    when it is one plain component and ``blob`` otherwise. The repository path is only reported."""
    from dulwich.diff_tree import tree_changes
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo

    notes = []
    try:
        repo = Repo(str(source))
    except NotGitRepository:
        return {"files": 0, "commits": 0, "results": [],
                "notes": ["the source is not a git repository: there is no history to scan"]}
    if (Path(repo.controldir()) / "shallow").exists():
        notes.append("the clone is shallow: only the commits it holds were scanned")
    head = repo.head()
    commits = [entry.commit for entry in repo.get_walker(include=[head])]
    commits.reverse()  # oldest first: a secret is attributed to the commit that introduced it
    blob_dir = scratch / "blobs"
    blob_dir.mkdir(parents=True, exist_ok=True)
    seen: set[bytes] = set()
    files: dict[str, str] = {}  # scratch file (relative to blob_dir) -> path in the repository, for display
    origin: dict[str, dict[str, Any]] = {}
    allowlist: dict[str, int] = {}
    unusual = 0
    truncated = False
    for commit in commits:
        parent_tree = None
        if commit.parents:
            try:
                parent_tree = repo[commit.parents[0]].tree  # type: ignore[attr-defined]
            except KeyError:
                parent_tree = None  # beyond a shallow boundary
        for change in tree_changes(repo.object_store, parent_tree, commit.tree):
            new = change.new
            if new is None or new.sha is None or new.path is None or new.sha in seen:
                continue
            if new.mode is not None and (new.mode & 0o170000) != 0o100000:
                continue  # links and submodules
            seen.add(new.sha)
            if len(files) >= max_blobs:
                truncated = True
                continue
            blob = repo[new.sha]
            data = blob.as_raw_string()
            if len(data) > MAX_FILE_BYTES or b"\x00" in data[:8000]:
                continue
            rel = new.path.decode("utf-8", "replace")
            if not _checkout_safe(new.path):
                unusual += 1
            scratch_name = f"{new.sha.decode('ascii')}/{_scratch_file_name(new.path)}"
            _write_new(blob_dir, scratch_name, data)
            files[scratch_name] = rel
            origin[scratch_name] = {"commit": commit.id.decode(), "blob": new.sha.decode()}
            count = pragmas(data)
            if count:
                allowlist[rel] = allowlist.get(rel, 0) + count
    if truncated:
        notes.append(f"history has more than {max_blobs} file versions; the rest were not scanned")
    if unusual:
        notes.append(f"{unusual} file versions in the history have paths a checkout would refuse "
                     "('..', '.git' or empty parts); they were scanned and are reported under those paths")
    current: dict[str, bytes] = {}
    for entry in repo.object_store.iter_tree_contents(repo[head].tree):  # type: ignore[attr-defined]
        current[entry.path.decode("utf-8", "replace")] = entry.sha
    cwd = os.getcwd()
    os.chdir(blob_dir)
    try:
        found = _scan(sorted(files))
        results = _results(Path("."), found, files, origin)
    finally:
        os.chdir(cwd)
    still_there = set()
    for r in results:
        if current.get(r["path"]) == r["blob"].encode():
            still_there.add((r["path"], r["type"], r["hashed_secret"]))
    # The same secret may live in several versions of a file: report it once, from the oldest.
    reported: dict[tuple[str, str, str], dict[str, Any]] = {}
    order = {c.id.decode(): i for i, c in enumerate(commits)}
    for r in sorted(results, key=lambda r: (order.get(r["commit"], 0), r["path"], r["line"])):
        key = (r["path"], r["type"], r["hashed_secret"])
        if key in still_there or _in_current(current, still_there, key):
            continue
        reported.setdefault(key, r)
    shutil.rmtree(blob_dir, ignore_errors=True)  # the blobs hold the secrets themselves
    return {"files": len(files), "commits": len(commits), "results": list(reported.values()), "notes": notes,
            "allowlist_comments": allowlist}


def _scratch_file_name(path: bytes) -> str:
    """The name a file version gets in its blob's scratch folder: the last part of its repository
    path when that is one plain name, else ``blob``."""
    name = path.rsplit(b"/", 1)[-1].decode("ascii", "replace")
    if _SAFE_NAME.fullmatch(name) and name.strip(".") and name.lower() != ".git":
        return name
    return "blob"


def _checkout_safe(path: bytes) -> bool:
    """Whether git would check this tree path out (no '.', '..', '.git' or empty parts)."""
    parts = path.split(b"/")
    return all(p and p not in (b".", b"..") and p.lower() != b".git" for p in parts)


def _write_new(base: Path, name: str, data: bytes) -> None:
    """Write ``data`` to a new file ``base/name`` (``<hex>/<plain name>``), refusing anything that
    would land elsewhere or reuse an existing file or link."""
    target = base / name
    if target.parent.parent != base or target.name in ("", ".", ".."):
        raise ValueError("scratch file name is not confined")
    target.parent.mkdir(exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _in_current(current: dict[str, bytes], still_there: set[tuple[str, str, str]], key: tuple[str, str, str]) -> bool:
    """A secret the current checkout still holds somewhere in the same file (its line moved)."""
    return any(k[0] == key[0] and k[2] == key[2] for k in still_there) and key[0] in current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("tree", "history"), required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--max-blobs", type=int, default=50_000)
    args = parser.parse_args(argv)
    source = Path(args.source).resolve()
    out = Path(args.out).resolve()
    scratch = Path(args.scratch).resolve()
    if args.mode == "tree":
        report = scan_tree(source)
    else:
        report = scan_history(source, scratch, args.max_blobs)
    out.write_text(json.dumps(report))
    extra = f" in {report['commits']} commits" if "commits" in report else ""
    sys.stdout.write(f"scanned {report['files']} files{extra}: {len(report['results'])} potential secrets\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
