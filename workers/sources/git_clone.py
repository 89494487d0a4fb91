"""Clone one repository with dulwich and check out a branch and/or commit.

Run as its own process (``python -m workers.sources.git_clone``) so a clone that hangs can be
killed at its deadline. Prints one JSON object: ``{"commit": sha, "branch": name}`` or
``{"error": code, "message": text}``. Credentials arrive in the environment, never in argv.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from dulwich import porcelain
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objectspec import parse_commit
from dulwich.repo import Repo

from tasks.netpolicy import guard_resolver, is_local_source


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


class CloneError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _with_credentials(url: str) -> str:
    user = os.environ.get("CERTUS_GIT_USERNAME")
    token = os.environ.get("CERTUS_GIT_PASSWORD")
    if not token:
        return url
    parts = urlsplit(url)
    netloc = f"{quote(user or 'x-access-token', safe='')}:{quote(token, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _count_files(root: Path, limit: int) -> int:
    count = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        count += len(filenames)
        if count > limit:
            return count
    return count


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def clone(url: str, dest: Path, branch: str | None, commit: str | None, *, max_files: int,
          max_bytes: int) -> dict[str, Any]:
    err = io.BytesIO()
    source = url if url.startswith("/") or urlsplit(url).scheme != "file" else urlsplit(url).path
    try:
        # Only the branch tip is needed when no commit is pinned: fetch it shallowly.
        repo = porcelain.clone(_with_credentials(source), str(dest), checkout=False, errstream=err,
                               branch=branch, depth=None if commit else 1)
    except (NotGitRepository, HangupException) as exc:
        raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
    except GitProtocolError as exc:
        text = str(exc).lower()
        if "not found" in text or "does not appear" in text or "repository" in text:
            raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
        raise CloneError("clone_failed", "the git server refused the clone") from exc
    except KeyError as exc:
        raise CloneError("branch_not_found", f"branch {branch!r} does not exist") from exc
    except (OSError, ValueError) as exc:
        text = str(exc).lower()
        if branch and ("branch" in text or "ref" in text or "not found" in text):
            raise CloneError("branch_not_found", f"branch {branch!r} does not exist") from exc
        if isinstance(exc, FileNotFoundError) or "not a git repository" in text:
            raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
        raise CloneError("clone_failed", "the clone failed") from exc
    with repo:
        head = _target(repo, branch, commit)
        pack_bytes = _size(dest / ".git")
        if pack_bytes > max_bytes:
            raise CloneError("repository_too_large", f"the repository exceeds {max_bytes} bytes")
        porcelain.reset(repo, "hard", head)
        files = _count_files(dest, max_files)
        if files > max_files:
            raise CloneError("too_many_files", f"the checkout has more than {max_files} files")
        if _size(dest) > max_bytes * 2:
            raise CloneError("repository_too_large", f"the checkout exceeds {max_bytes * 2} bytes")
        resolved_branch = branch
        if resolved_branch is None:
            try:
                symrefs: Any = repo.refs.get_symrefs()
                target = symrefs.get(b"HEAD", b"")
                resolved_branch = target.decode().removeprefix("refs/heads/") or None
            except (KeyError, UnicodeDecodeError):
                resolved_branch = None
        return {"commit": head.decode(), "branch": resolved_branch}


def _target(repo: Repo, branch: str | None, commit: str | None) -> bytes:
    refs: Any = repo.refs
    tip = refs[b"HEAD"] if b"HEAD" in refs else None
    if branch:
        ref = f"refs/remotes/origin/{branch}".encode()
        local = f"refs/heads/{branch}".encode()
        tip = refs[local] if local in refs else refs[ref] if ref in refs else None
        if tip is None:
            raise CloneError("branch_not_found", f"branch {branch!r} does not exist")
    if not commit:
        if tip is None:
            raise CloneError("empty_repository", "the repository has no commits")
        return tip
    try:
        obj = parse_commit(repo, commit.encode())
    except (KeyError, ValueError) as exc:
        raise CloneError("commit_not_found", f"commit {commit} does not exist in the repository") from exc
    sha = obj.id
    if branch and tip is not None and not _reachable(repo, tip, sha):
        raise CloneError("commit_not_on_branch", f"commit {commit} is not reachable from branch {branch!r}")
    return sha


def _reachable(repo: Repo, tip: bytes, sha: bytes) -> bool:
    walker: Any = repo.get_walker(include=[tip])  # type: ignore[list-item]
    return any(entry.commit.id == sha for entry in walker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--branch")
    parser.add_argument("--commit")
    parser.add_argument("--max-files", type=int, default=200_000)
    parser.add_argument("--max-bytes", type=int, default=2 * 1024**3)
    args = parser.parse_args(argv)
    refused: list[str] = []
    if not is_local_source(args.url):
        # Every connection the clone makes (redirects included) is checked when it is made.
        refused = guard_resolver(_list(os.environ.get("CERTUS_GIT_ALLOWED_HOSTS", "")))
    try:
        out = clone(args.url, Path(args.dest), args.branch, args.commit, max_files=args.max_files,
                    max_bytes=args.max_bytes)
    except CloneError as exc:
        out = {"error": exc.code, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - report, never print a trace with a URL in it
        out = {"error": "clone_failed", "message": f"the clone failed ({exc.__class__.__name__})"}
    if "error" in out and refused:
        out = {"error": "git_host_not_allowed",
               "message": f"the clone was sent to host {refused[0]!r}, which resolves to a non-public address"}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0 if "error" not in out else 3


if __name__ == "__main__":
    sys.exit(main())
