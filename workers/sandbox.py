"""The sandbox every scanner and every clone runs in: bubblewrap, an unprivileged user, resource
limits, and nothing of the service in view.

A tool sees, each at its own path so that the paths in its argv and its reports mean the same
inside and out: the system's programs and libraries (``/usr``), a few files of ``/etc``, its own
folder and every other file its argv names (read-only), the checkout (read-only), one writable
output folder, and a private ``/tmp``, ``/proc`` and ``/dev``. Scanners get no network at all; the
clone keeps the network (it must reach the git server) but still sees nothing else. Nothing of the
service -- ``var/``, keys, other scans' folders, Redis -- is there.

The tool never runs as root: a worker running as root starts bubblewrap as root (it needs no user
namespace then) and drops to ``SANDBOX_UID``/``SANDBOX_GID`` with every capability gone before the
tool starts; a worker that is not root runs it as itself in a user namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.settings import Settings

# Parts of /etc a tool may need (certificates, the dynamic linker's cache, names of users and
# hosts, the time zone); the rest of /etc stays out of view.
_ETC = ("/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/alternatives",
        "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd",
        "/etc/group", "/etc/nsswitch.conf", "/etc/mime.types", "/etc/os-release")
# What a tool that talks to the network (the clone) needs in addition.
_ETC_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/gai.conf", "/etc/host.conf", "/etc/ssh/ssh_config",
                "/etc/ssh/ssh_config.d")
_TMP = "/tmp"  # noqa: S108 - the sandbox's own private, memory-backed /tmp
_OWN_MOUNTS = {Path(_TMP), Path("/proc"), Path("/dev")}
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Exit statuses bubblewrap passes on for a tool killed by a signal (128 + signal number): the
# kernel's answer to a resource limit (CPU, file size, memory) or a crash. Never a result.
KILLED_BY = {128 + 9: "SIGKILL (a hard limit, or out of memory)", 128 + 24: "SIGXCPU (CPU limit)",
             128 + 25: "SIGXFSZ (file size limit)", 128 + 11: "SIGSEGV", 128 + 7: "SIGBUS", 128 + 6: "SIGABRT"}

FIX = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make run` and `make test` do it "
       "when run as root), and when the worker is not root allow unprivileged user namespaces "
       "(`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04 also "
       "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`). For development on trusted code only: "
       "CERTUS_ASSURANCE_SANDBOX=off")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be created on this machine: no scan may run."""


@dataclass(frozen=True)
class Confinement:
    """What one sandboxed process sees besides the system: host paths, each at the same path."""

    read_only: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    network: bool = False
    env: Mapping[str, str] = field(default_factory=dict)


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = settings.sandbox != "off"
        self.as_root = os.geteuid() == 0

    @property
    def uid(self) -> int:
        return self.settings.sandbox_uid if self.as_root else os.geteuid()

    @property
    def gid(self) -> int:
        return self.settings.sandbox_gid if self.as_root else os.getegid()

    def check(self) -> None:
        """Raise ``SandboxUnavailable`` (saying why and how to fix it) unless a sandboxed process
        can be started here. Probed once per process."""
        if self.enabled:
            _probe(self.as_root, self.settings.sandbox_uid, self.settings.sandbox_gid)

    def give(self, path: Path) -> None:
        """Make a folder the sandbox writes into its user's (it is created by the worker)."""
        if self.enabled and self.as_root:
            os.chown(path, self.uid, self.gid)

    def share(self, tree: Path) -> None:
        """Make a tree the worker wrote (a directory or archive source) readable by the sandbox's
        user. Tools see it read-only whoever owns it."""
        if not (self.enabled and self.as_root):
            return
        for dirpath, dirnames, filenames in os.walk(tree):
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)
        os.lchown(tree, self.uid, self.gid)

    def wrap(self, argv: list[str], confinement: Confinement, cwd: Path) -> tuple[list[str], dict[str, str]]:
        """The argv that runs ``argv`` confined, and the environment to start it with. With the
        sandbox off: ``argv`` unchanged."""
        env = dict(confinement.env)
        if not self.enabled:
            return list(argv), env
        env["TMPDIR"] = _TMP
        s = self.settings
        # CPU: SIGXCPU at the limit, SIGKILL five seconds later for a tool that ignores it.
        limits = ["prlimit", f"--cpu={s.sandbox_cpu_seconds}:{s.sandbox_cpu_seconds + 5}",
                  f"--as={s.sandbox_memory_bytes}", f"--fsize={s.sandbox_file_bytes}",
                  f"--nproc={s.sandbox_max_processes}", f"--nofile={s.sandbox_max_open_files}", "--core=0", "--"]
        bwrap = [_bwrap() or "bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid",
                 "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if not confinement.network:
            bwrap.append("--unshare-net")
        if not self.as_root:
            bwrap += ["--unshare-user", "--disable-userns"]
        bwrap += _system_mounts(confinement.network)
        # Private /proc, /dev and /tmp first, so that a path below /tmp mounted next stays visible.
        bwrap += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(s.sandbox_tmp_bytes),
                  "--tmpfs", _TMP]
        system = (*_ETC, *(_ETC_NETWORK if confinement.network else ()))
        seen: set[Path] = {Path(name) for name in system if os.path.exists(name)}
        for path in _covering(confinement.read_only, confinement.writable):
            bwrap += ["--ro-bind", str(path), str(path)]
            seen.add(path)
        for path in confinement.writable:
            bwrap += ["--bind", str(path), str(path)]
            seen.add(path)
        # Folders bubblewrap creates on the way to a mount point are private to root: open them.
        for parent in sorted(_parents(seen)):
            bwrap += ["--chmod", "0755", str(parent)]
        bwrap += ["--chdir", str(cwd), "--"]
        drop: list[str] = []
        if self.as_root:
            drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        return [*limits, *bwrap, *drop, *argv], env


def tool_paths(argv: list[str], *, exclude: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The host paths a tool's argv needs in view: every absolute path it names (also as the
    value of ``--opt=/path`` or ``format=/path``) that exists and is not one of ``exclude`` (the
    checkout and the output folder, mounted on their own terms), with the whole environment of an
    executable that lives in a virtual environment, and the Python that environment is built on."""
    excluded = [p.resolve() for p in exclude]
    found: list[Path] = []
    for token in argv:
        for candidate in _path_tokens(token):
            path = Path(candidate)
            if not path.exists() or _is_system(path) or any(path == e or e in path.parents for e in excluded):
                continue
            found.append(path)
            venv = _venv_of(path)
            if venv is not None:
                found.append(venv)
                found.extend(_python_home(venv))
                if venv.resolve() == Path(sys.prefix).resolve():
                    found.extend(service_python())  # the service's own code, run as a tool
    return tuple(dict.fromkeys(found))


def service_python() -> tuple[Path, ...]:
    """What running the service's own code needs: its interpreter and environment, and the
    project's packages the sandboxed entry points import (code only, never ``var/``)."""
    import tasks
    import workers

    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(workers.__file__).parent, Path(tasks.__file__).parent]
    return tuple(dict.fromkeys(p.resolve() for p in paths))


def _is_system(path: Path) -> bool:
    """Mounted for every tool already (``/usr`` and the links into it)."""
    top = Path(*path.parts[:2]) if len(path.parts) > 1 else path
    return str(top) in ("/usr", *_SYSTEM_DIRS) or str(path.resolve()).startswith("/usr/")


def _path_tokens(token: str) -> list[str]:
    out = []
    if token.startswith("/"):
        out.append(token)
    if "=" in token:
        value = token.split("=", 1)[1]
        if value.startswith("/"):
            out.append(value)
    return out


def _venv_of(path: Path) -> Path | None:
    for parent in [path, *path.parents][:4]:
        if (parent / "pyvenv.cfg").is_file():
            return parent
    return None


def _python_home(venv: Path) -> list[Path]:
    """The installation a virtual environment's interpreter links to (``home`` in pyvenv.cfg)."""
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            prefix = Path(value.strip()).resolve().parent
            return [] if str(prefix).startswith("/usr") else [prefix]
    return []


def _covering(read_only: Iterable[Path], writable: Iterable[Path]) -> list[Path]:
    """Read-only paths, without those another one already covers (the system's included), in an
    order where a folder comes before what lies below it. A writable path's own mount wins."""
    paths = sorted({Path(os.path.abspath(p)) for p in read_only}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in paths:
        if str(path).startswith("/usr/") or path == Path("/usr") or path in writable:
            continue
        if any(k == path or k in path.parents for k in kept):
            continue
        kept.append(path)
    return kept


def _parents(paths: Iterable[Path]) -> set[Path]:
    parents: set[Path] = set()
    for path in paths:
        for parent in path.parents:
            if parent != Path("/"):
                parents.add(parent)
    # A parent that is itself a mount point keeps its own permissions.
    return {p for p in parents if p not in paths and p not in _OWN_MOUNTS and not any(m in p.parents for m in paths)}


def _system_mounts(network: bool) -> list[str]:
    argv = ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        if os.path.islink(name):
            argv += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            argv += ["--ro-bind", name, name]
    for name in (*_ETC, *(_ETC_NETWORK if network else ())):
        if os.path.exists(name):
            argv += ["--ro-bind", name, name]
    return argv


@functools.lru_cache(maxsize=1)
def _bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=4)
def _probe(as_root: bool, uid: int, gid: int) -> None:
    exe = _bwrap()
    if exe is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed; {FIX}")
    for tool in ("prlimit", "setpriv") if as_root else ("prlimit",):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"{tool} (util-linux) is not installed; {FIX}")
    settings = Settings(sandbox_uid=uid, sandbox_gid=gid)
    argv, env = Sandbox(settings).wrap(["/usr/bin/env", "true"], Confinement(), Path("/"))
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bubblewrap could not be started ({exc.__class__.__name__}); {FIX}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here ({said[0][:200]}); {FIX}")


def scrub(folder: Path, max_depth: int) -> int:
    """After a tool has ended, leave in its output folder only regular files and folders at most
    ``max_depth`` deep, so that the worker, which reads the tool's reports as itself, never follows
    a link the tool planted (to a key, a credentials file) nor trips over a FIFO or a device, and
    its own clean-up never meets a tree too deep to walk. Works at any depth: it moves from folder
    to folder by descriptor, without recursion and without building long paths. Returns how many
    entries it removed."""
    removed = 0
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    # Each frame: the folder's descriptor, its entries still to look at, its depth, its name in
    # the folder above, and whether the whole folder goes.
    stack: list[tuple[int, list[tuple[str, bool, bool]], int, str, bool]] = []
    top = os.open(folder, flags)
    stack.append((top, _entries(top), 0, "", False))
    while stack:
        fd, entries, depth, name, doomed = stack[-1]
        if entries:
            child, is_dir, is_file = entries.pop()
            if is_dir:
                sub = os.open(child, flags, dir_fd=fd)
                stack.append((sub, _entries(sub), depth + 1, child, doomed or depth + 1 > max_depth))
            elif doomed or not is_file:
                os.unlink(child, dir_fd=fd)
                removed += 1
            continue
        stack.pop()
        os.close(fd)
        if doomed and stack:
            os.rmdir(name, dir_fd=stack[-1][0])
            removed += 1
    return removed


def _entries(fd: int) -> list[tuple[str, bool, bool]]:
    with os.scandir(fd) as found:
        return [(e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False)) for e in found]
