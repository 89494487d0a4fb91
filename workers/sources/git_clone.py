"""Clone one repository with dulwich and check out a branch and/or commit.

Run as its own process (``python -m workers.sources.git_clone``) so a clone that hangs can be
killed at its deadline. Prints one JSON object: ``{"commit": sha, "branch": name}`` or
``{"error": code, "message": text}``.

The job (see ``run_job``; credentials included) arrives as one JSON line on standard input, never
in argv or the environment, so the worker can start the process ahead of need: the imports are
done by the time a scan needs a clone. By hand:
``echo '{"url": ..., "dest": ..., "max_files": 1000, "max_bytes": 100000000}' | python -m workers.sources.git_clone``.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shlex
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dulwich import porcelain
from dulwich.client import HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objectspec import parse_commit
from dulwich.repo import Repo

from tasks.errors import CodedError
from tasks.netpolicy import HostNotAllowed, check_url, guard_resolver, is_local_source
from tasks.pathsafe import MAX_TREE_DEPTH

# What a clone would otherwise import on first use, loaded with the rest while the process waits
# for its job (see workers.sources.git.SpareClone): none of it on the clone's own time.
for _module in ("dulwich.commit_graph", "dulwich.filters", "dulwich.line_ending", "dulwich.worktree",
                "encodings.idna", "platform", "stringprep", "unicodedata"):
    importlib.import_module(_module)


class CloneError(CodedError):
    """The clone failed; ``code`` says why."""


class RedirectRefused(Exception):
    """The server redirected the clone to a host the network policy does not allow."""


def _checked_pool_manager(allowed_hosts: list[str]) -> Any:
    """A urllib3 pool manager that checks every URL it is sent to, redirects included, against
    the same host policy the API and the worker apply to the git URL itself."""
    import urllib3

    class CheckedPoolManager(urllib3.PoolManager):
        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
            try:
                check_url(url, allowed_hosts, allow_local=False)
            except HostNotAllowed as exc:
                raise RedirectRefused(str(exc)) from exc
            return super().urlopen(method, url, redirect=redirect, **kw)

    return CheckedPoolManager(headers={"User-Agent": "certus-assurance (dulwich)"})


def _ssh_command(url: str, ssh_key: str | None = None, known_hosts: str | None = None) -> str:
    """``ssh`` looks the host up itself, outside this process's guarded resolver. So the host is
    resolved here, through that resolver (which refuses non-public addresses of hosts not
    allowed), and ssh is told to connect to that very address. It still checks the host key
    under the URL's host name. It never prompts: a scan has no one to answer. ``ssh_key``: the
    only key it offers; ``known_hosts``: the only host keys it trusts."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or 22, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise CloneError("git_host_unresolvable", f"cannot resolve host {host!r}") from exc
    address = str(infos[0][4][0])
    # The host key is looked up under the name ssh itself would use: `[host]:port` off port 22.
    alias = host if parts.port in (None, 22) else f"[{host}]:{parts.port}"
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"HostName={address}", "-o", f"HostKeyAlias={alias}"]
    if ssh_key:
        argv += ["-i", ssh_key, "-o", "IdentitiesOnly=yes"]
    if known_hosts:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                 "-o", "StrictHostKeyChecking=yes"]
    return shlex.join(argv)


def _transport_kwargs(url: str, allowed_hosts: list[str], username: str | None, password: str | None,
                      ssh_key: str | None = None, known_hosts: str | None = None) -> dict[str, Any]:
    scheme = urlsplit(url).scheme
    if scheme in ("ssh", "git+ssh"):
        return {"ssh_command": _ssh_command(url, ssh_key, known_hosts)}
    if scheme not in ("http", "https"):
        return {}
    kwargs: dict[str, Any] = {"pool_manager": _checked_pool_manager(allowed_hosts)}
    if password:
        # Sent as basic auth to the URL's own origin only (dulwich drops it on a cross-origin redirect).
        kwargs["username"] = username or "x-access-token"
        kwargs["password"] = password
    return kwargs


class _ShallowUnsupported(Exception):
    pass


def _clone_once(source: str, dest: Path, branch: str | None, depth: int | None, kwargs: dict[str, Any]) -> Repo:
    err = io.BytesIO()
    try:
        return porcelain.clone(source, str(dest), checkout=False, errstream=err, branch=branch, depth=depth,
                               recurse_submodules=False, **kwargs)
    except RedirectRefused as exc:
        raise CloneError("git_redirect_not_allowed", f"the server redirected the clone elsewhere: {exc}") from exc
    except HTTPUnauthorized as exc:
        raise CloneError("git_auth_failed", "the git server refused the credentials (or needs some)") from exc
    except HangupException as exc:
        said = b"\n".join(exc.stderr_lines or []).lower()
        if b"host key verification failed" in said:
            raise CloneError("git_host_key_unverified", "the ssh host key is not among the trusted "
                             "ones (CERTUS_ASSURANCE_GIT_SSH_KNOWN_HOSTS)") from exc
        if b"permission denied" in said:
            raise CloneError("git_auth_failed", "the git server refused the ssh key (or needs one)") from exc
        raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
    except NotGitRepository as exc:
        raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
    except GitProtocolError as exc:
        text = str(exc).lower()
        if depth is not None and ("shallow" in text or "depth" in text):
            raise _ShallowUnsupported() from exc
        if "not found" in text or "does not appear" in text or "repository" in text:
            raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
        if "unexpected http resp 3" in text:
            raise CloneError("git_redirect_not_allowed", "the server redirected the clone") from exc
        raise CloneError("clone_failed", "the git server refused the clone") from exc
    except NotImplementedError as exc:
        if depth is not None:
            raise _ShallowUnsupported() from exc
        raise CloneError("clone_failed", "the server does not support this clone") from exc
    except KeyError as exc:
        raise CloneError("branch_not_found", f"branch {branch!r} does not exist") from exc
    except (OSError, ValueError) as exc:
        text = str(exc).lower()
        if branch and ("branch" in text or "ref" in text or "not found" in text):
            raise CloneError("branch_not_found", f"branch {branch!r} does not exist") from exc
        if isinstance(exc, FileNotFoundError) or "not a git repository" in text:
            raise CloneError("repository_not_found", "the repository does not exist or cannot be read") from exc
        raise CloneError("clone_failed", "the clone failed") from exc


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


def _self_contained(repo: Path) -> None:
    """A local repository must hold its own objects: a ``.git`` file (``gitdir:``), a ``commondir``,
    ``objects/info/alternates`` or a linked objects folder would make the clone read a repository
    outside the allowed source roots."""
    git_dir = repo / ".git" if os.path.lexists(repo / ".git") else repo
    refused = None
    if git_dir.is_symlink() or git_dir.is_file():
        refused = "its .git points to another folder"
    elif (git_dir / "commondir").exists():
        refused = "it is a worktree of another repository"
    elif (git_dir / "objects").is_symlink() or os.path.lexists(git_dir / "objects" / "info" / "alternates"):
        refused = "it borrows objects from another repository"
    if refused:
        raise CloneError("path_not_allowed", f"the local repository cannot be cloned: {refused}")


def clone(url: str, dest: Path, branch: str | None, commit: str | None, *, max_files: int,
          max_bytes: int, allowed_hosts: list[str] | None = None, full_history: bool = False,
          username: str | None = None, password: str | None = None, ssh_key: str | None = None,
          known_hosts: str | None = None) -> dict[str, Any]:
    source = url if url.startswith("/") or urlsplit(url).scheme != "file" else urlsplit(url).path
    if is_local_source(url):
        _self_contained(Path(source))
    kwargs = _transport_kwargs(source, allowed_hosts or [], username, password, ssh_key, known_hosts)
    # Only the branch tip is needed when no commit is pinned and no scanner reads the history: ask
    # for it shallowly, and fall back to a full clone where the server cannot serve a shallow one.
    depth = None if commit or full_history else 1
    try:
        repo = _clone_once(source, dest, branch, depth, kwargs)
    except _ShallowUnsupported:
        shutil.rmtree(dest, ignore_errors=True)
        repo = _clone_once(source, dest, branch, None, kwargs)
    with repo:
        head = _target(repo, branch, commit)
        # Before the checkout moves HEAD: whether the default branch holds a commit asked for alone.
        held_by_default = bool(branch is None and commit and _on_head(repo, head))
        pack_bytes = _size(dest / ".git")
        if pack_bytes > max_bytes:
            raise CloneError("repository_too_large", f"the repository exceeds {max_bytes} bytes")
        _check_tree(repo, head, max_files)
        porcelain.reset(repo, "hard", head)
        files = _count_files(dest, max_files)
        if files > max_files:
            raise CloneError("too_many_files", f"the checkout has more than {max_files} files")
        if _size(dest) > max_bytes * 2:
            raise CloneError("repository_too_large", f"the checkout exceeds {max_bytes * 2} bytes")
        resolved_branch = branch
        default_branch = None
        try:
            symrefs: Any = repo.refs.get_symrefs()
            if resolved_branch is None:
                resolved_branch = symrefs.get(b"HEAD", b"").decode().removeprefix("refs/heads/") or None
            # The remote's HEAD: its default branch, whichever branch was cloned.
            default_branch = symrefs.get(b"refs/remotes/origin/HEAD", b"").decode().removeprefix(
                "refs/remotes/origin/") or None
        except (KeyError, UnicodeDecodeError):
            pass
        if default_branch is None and branch is None:
            default_branch = resolved_branch
        if branch is None and commit and not held_by_default:
            # A commit asked for alone that the default branch does not hold (a pull request's
            # head, say) belongs to no branch.
            resolved_branch = None
        return {"commit": head.decode(), "branch": resolved_branch, "default_branch": default_branch}


def _check_tree(repo: Repo, commit: bytes, max_files: int) -> None:
    """Refuse, before checking anything out, a tree nesting folders deeper than MAX_TREE_DEPTH or
    holding more than ``max_files`` files. Measured on the tree objects without recursion, each
    subtree once: a tree may name the same subtree many times, so a few kilobytes of objects can
    stand for millions of files (a "tree bomb")."""
    root: bytes = repo[commit].tree  # type: ignore[attr-defined]
    heights: dict[bytes, int] = {}
    files: dict[bytes, int] = {}
    todo: list[tuple[bytes, bool]] = [(root, False)]
    while todo:
        sha, children_done = todo.pop()
        if sha in heights:
            continue
        entries = list(repo[sha].iteritems())  # type: ignore[attr-defined]
        subtrees = [entry.sha for entry in entries if stat.S_ISDIR(entry.mode)]
        if not children_done:
            todo.append((sha, True))
            todo.extend((sub, False) for sub in subtrees if sub not in heights)
            continue
        heights[sha] = 1 + max((heights[sub] for sub in subtrees), default=0)
        files[sha] = len(entries) - len(subtrees) + sum(files[sub] for sub in subtrees)
        if heights[sha] > MAX_TREE_DEPTH:
            raise CloneError("source_too_deep", f"the repository nests folders more than {MAX_TREE_DEPTH} levels deep")
        if files[sha] > max_files:
            raise CloneError("too_many_files", f"the checkout has more than {max_files} files")


def _target(repo: Repo, branch: str | None, commit: str | None) -> bytes:
    refs: Any = repo.refs
    tip: bytes | None = refs[b"HEAD"] if b"HEAD" in refs else None
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


def _on_head(repo: Repo, sha: bytes) -> bool:
    refs: Any = repo.refs
    return b"HEAD" in refs and _reachable(repo, refs[b"HEAD"], sha)


def _reachable(repo: Repo, tip: bytes, sha: bytes) -> bool:
    walker: Any = repo.get_walker(include=[tip])  # type: ignore[list-item]
    return any(entry.commit.id == sha for entry in walker)


def _key_file(text: str | None) -> str | None:
    """The deploy key written where only this process can read it (0600 in its private /tmp)."""
    if not text:
        return None
    fd, path = tempfile.mkstemp(prefix="deploy-key-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One clone as a JSON-ready result. ``job``: url, dest, branch, commit, max_files, max_bytes,
    allowed_hosts, full_history, username, password, ssh_key_data (the key's text), known_hosts."""
    key_path = _key_file(job.get("ssh_key_data"))
    try:
        return _run_job(job, key_path)
    finally:
        if key_path:
            os.unlink(key_path)


def _run_job(job: dict[str, Any], key_path: str | None) -> dict[str, Any]:
    allowed = list(job.get("allowed_hosts") or [])
    refused: list[str] = []
    if not is_local_source(job["url"]):
        # Every connection the clone makes (redirects included) is checked when it is made.
        refused = guard_resolver(allowed)
    try:
        out = clone(job["url"], Path(job["dest"]), job.get("branch"), job.get("commit"),
                    max_files=int(job["max_files"]), max_bytes=int(job["max_bytes"]), allowed_hosts=allowed,
                    full_history=bool(job.get("full_history")), username=job.get("username"),
                    password=job.get("password"), ssh_key=key_path,
                    known_hosts=job.get("known_hosts"))
    except CloneError as exc:
        out = {"error": exc.code, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - report, never print a trace with a URL in it
        out = {"error": "clone_failed", "message": f"the clone failed ({exc.__class__.__name__})"}
    if "error" in out and refused and out["error"] != "git_redirect_not_allowed":
        out = {"error": "git_host_not_allowed",
               "message": f"the clone was sent to host {refused[0]!r}, which resolves to a non-public address"}
    return out


def main() -> int:
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the worker went away before it had a clone for us
    out = run_job(json.loads(line))
    sys.stdout.write(json.dumps(out) + "\n")
    return 0 if "error" not in out else 3


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Nothing is left to clean up (the repository is closed, the answer written): skip the
    # interpreter's teardown, which would keep the scan waiting for this process's exit.
    os._exit(code)
