"""Symbolic links in a fetched source. Every source type (git checkout, archive, directory copy)
goes through ``remove_unsafe_links`` before any scanner reads the tree.

A link is kept only when it is relative and ends, inside the tree, at a regular file or at a
folder that does not lead back to it. Removed:

- ``absolute``: an absolute target, wherever it points (a scanner in a sandbox would resolve it
  against the sandbox's own ``/dev``, ``/etc``...);
- ``outside``: the target, every link on the way followed, lies outside the tree;
- ``dangling``: the target does not exist (or cannot be reached);
- ``special``: the target is a fifo, socket or device (a read that blocks or never ends);
- ``loop``: links that lead to each other (``a -> b -> a``), or folder links from which the
  link itself can be reached again (``pkg/up -> ..``), so a walker that follows links never ends;
- ``fan-out``: every folder link, when together they would let a walker that follows links see
  more than ``MAX_LINK_ROUTES`` folders through links (links to links to links... multiply).

Links are judged again after each round of removals: a link that led through a removed one
dangles now and goes too.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_DIRECTORY_LINKS = 2_000
MAX_LINK_ROUTES = 20_000
EXAMPLES = 8
_REASONS = {"absolute": "absolute", "outside": "leading outside the source", "dangling": "dangling",
            "special": "to a fifo, socket or device", "loop": "looping", "fan-out": "multiplying folders"}


@dataclass
class LinkReport:
    removed: dict[str, str] = field(default_factory=dict)  # path relative to the tree -> reason

    def warning(self) -> dict[str, str] | None:
        """The scan's ``symlinks_removed`` warning, or None when nothing was removed."""
        if not self.removed:
            return None
        counts: dict[str, int] = {}
        for reason in self.removed.values():
            counts[reason] = counts.get(reason, 0) + 1
        kinds = ", ".join(f"{counts[r]} {_REASONS[r]}" for r in _REASONS if r in counts)
        paths = sorted(self.removed)
        shown = ", ".join(_printable(p) for p in paths[:EXAMPLES])
        more = f" (and {len(paths) - EXAMPLES} more)" if len(paths) > EXAMPLES else ""
        return {"code": "symlinks_removed",
                "message": f"{len(paths)} symbolic links were removed ({kinds}): {shown}{more}"}


def _printable(rel: str, limit: int = 120) -> str:
    """A path from the source as safe text: control and undecodable characters as ``?``, cut short."""
    text = "".join(c if c.isprintable() else "?" for c in rel)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def remove_unsafe_links(root: Path) -> LinkReport:
    """Remove every link under ``root`` that is not safe to follow (see the module's docstring)."""
    base = os.path.realpath(root)
    report = LinkReport()
    kept = sorted(_links(base))
    while kept:
        verdicts = {link: _judge(base, link) for link in kept}
        folders = [(link, real) for link, (reason, real) in verdicts.items() if reason is None and real]
        for link, reason in _folder_link_verdicts(folders).items():
            verdicts[link] = (reason, None)
        gone = [link for link, (reason, _) in verdicts.items() if reason is not None]
        if not gone:
            break
        for link in gone:
            os.unlink(link)
            report.removed[os.path.relpath(link, base)] = str(verdicts[link][0])
        removed = set(gone)
        kept = [link for link in kept if link not in removed]
    return report


def links_leaving(root: Path) -> list[Path]:
    """Every symlink under ``root`` whose fully resolved target lies outside ``root``."""
    base = os.path.realpath(root)
    return [Path(link) for link in _links(str(root)) if not _under(os.path.realpath(link), base)]


def _links(base: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(base):  # links to folders are listed, not entered
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                yield path


def _judge(base: str, link: str) -> tuple[str | None, str | None]:
    """(reason to remove, None) or (None, the real target when it is a folder, else None)."""
    if os.readlink(link).startswith("/"):
        return "absolute", None
    try:
        real = os.path.realpath(link, strict=True)
    except OSError as exc:
        return ("loop" if exc.errno == errno.ELOOP else "dangling"), None
    if not _under(real, base):
        return "outside", None
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return "dangling", None
    if stat.S_ISDIR(mode):
        return None, real
    return (None, None) if stat.S_ISREG(mode) else ("special", None)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _folder_link_verdicts(folders: list[tuple[str, str]]) -> dict[str, str]:
    """Which of the folder links ``(link, real target)`` loop or, together, fan out.

    Following link ``i`` leads into its target's subtree; from there link ``j`` can be followed
    when ``j`` lies in that subtree: an edge ``i -> j``. A link on a cycle of that graph (itself
    included) loops. What is left is acyclic; the number of its paths is how many folders a walker
    that follows links reaches through them."""
    if len(folders) > MAX_DIRECTORY_LINKS:
        return {link: "fan-out" for link, _ in folders}
    parents = sorted((os.path.dirname(link), n) for n, (link, _) in enumerate(folders))
    keys = [p for p, _ in parents]
    edges: list[list[int]] = []
    for _link, target in folders:
        inside = [n for _, n in parents[bisect.bisect_left(keys, target):bisect.bisect_right(keys, target)]]
        start = bisect.bisect_left(keys, target.rstrip("/") + "/")
        end = bisect.bisect_left(keys, target.rstrip("/") + "0")  # "0" sorts right after "/"
        edges.append(inside + [n for _, n in parents[start:end]])
    looping, order = _cycles(edges)
    verdicts = {folders[n][0]: "loop" for n in looping}
    routes = [0] * len(folders)
    for n in order:  # successors first
        if n not in looping:
            routes[n] = 1 + sum(routes[m] for m in edges[n] if m not in looping)
            if routes[n] > MAX_LINK_ROUTES:
                break
    if sum(routes) > MAX_LINK_ROUTES:
        verdicts.update({link: "fan-out" for n, (link, _) in enumerate(folders) if n not in looping})
    return verdicts


def _cycles(edges: list[list[int]]) -> tuple[set[int], list[int]]:
    """Nodes on a cycle (Tarjan's strongly connected components, without recursion), and every
    node in an order where each comes after all it leads to."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    looping: set[int] = set()
    order: list[int] = []
    for start in range(len(edges)):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(edges[start]))]
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    order.extend(component)
                    if len(component) > 1 or node in edges[node]:
                        looping.update(component)
    return looping, order
