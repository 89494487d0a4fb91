"""A scanner that turns hostile is stopped by the sandbox: it cannot write outside its output
folder, read the service's keys, reach Redis, fork without bound, fill the disk, burn CPU without
end, run as root, or leave a process behind.

The hostile "scanner" is a real program (a Python script run by the service's interpreter) started
through the real pipeline (``run_tools``) under the real bubblewrap, as every scanner is; only the
adapter around it is the test's own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tasks.events import EventLog
from tasks.settings import Settings
from workers.bundle import Bundle
from workers.emitter import ScanEmitter
from workers.pipeline.tools import Selection, ToolRunReport, run_tools
from workers.redact import Redactor
from workers.sandbox import Confinement, Sandbox, SandboxUnavailable
from workers.scanners.base import Scanner, ToolContext, ToolOutput, read_json_report
from workers.toolrun import ProcessResult


@dataclass
class HostileTool(Scanner):
    """Runs ``script`` (its text fixed by the test, so no target path is named in its argv)."""

    script: Path
    id: str = "hostile"

    def unavailable_reason(self) -> str | None:
        return None

    def version(self) -> str:
        return "1"

    def command(self, ctx: ToolContext) -> list[str]:
        return [sys.executable, "-I", str(self.script), str(ctx.out_dir / "report.json")]

    def parse(self, ctx: ToolContext, result: ProcessResult) -> ToolOutput:
        report = read_json_report(self.id, ctx.out_dir / "report.json", result)
        ctx.config["report"] = report  # handed back to the test
        return ToolOutput(findings=[], sarif=False)


@pytest.fixture
def world(tmp_path: Path, redis_client: Any) -> dict[str, Any]:
    """A service's folders with secrets in them, and a scan's checkout beside them."""
    root = tmp_path / "service"
    keys = root / "var" / "keys"
    keys.mkdir(parents=True)
    (keys / "cosign.key").write_text("SIGNING-KEY-MATERIAL")
    (root / "var" / "admin-key").write_text("ADMIN-KEY-MATERIAL")
    other_scan = root / "var" / "work" / "test_other.abcd" / "src"
    other_scan.mkdir(parents=True)
    (other_scan / "secret.py").write_text("OTHER-TENANT-CODE")
    work = root / "var" / "work" / "test_mine.ef01"
    source = work / "src"
    source.mkdir(parents=True)
    (source / "app.py").write_text("print('hello')\n")
    Sandbox(Settings()).share(source)
    return {"root": root, "work": work, "source": source, "redis": redis_client}


def _run(world: dict[str, Any], tmp_path: Path, body: str, name: str = "", **limits: Any,
         ) -> tuple[ToolRunReport, dict[str, Any]]:
    script = tmp_path / (name or f"hostile_{uuid.uuid4().hex[:8]}.py")
    script.write_text("import json, os, sys\nout = {}\n" + textwrap.dedent(body)
                      + "\njson.dump(out, open(sys.argv[1], 'w'))\n")
    script.chmod(0o644)
    tmp_path.chmod(0o755)
    settings = Settings(work_root=str(world["root"] / "var" / "work"), tool_timeout=60, **limits)
    tool = HostileTool(script)
    config: dict[str, Any] = {}
    bundle = Bundle(str(world["root"] / "var" / "artifacts"), "test_mine", "ef01")
    emitter = ScanEmitter(EventLog(world["redis"]), f"test_sandbox_{uuid.uuid4().hex[:8]}", Redactor())
    report = run_tools(Selection(tools=[(tool, config)], unsupported=[]), world["source"],
                       world["work"] / "tools", bundle, emitter, settings, lambda: False)
    return report, config.get("report", {})


def _alive_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_the_tool_runs_unprivileged_with_no_capabilities(world, tmp_path):
    report, out = _run(world, tmp_path, """
        out["uid"] = os.getuid(); out["euid"] = os.geteuid(); out["gid"] = os.getgid()
        out["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
    """)
    assert report.errors == {}
    assert out["uid"] != 0 and out["euid"] != 0 and out["gid"] != 0
    assert int(out["caps"], 16) == 0


def test_the_tool_cannot_write_outside_its_output_folder_or_read_the_service(world, tmp_path):
    root, source = world["root"], world["source"]
    targets = {
        "checkout": str(source / "app.py"),
        "keys": str(root / "var" / "keys" / "cosign.key"),
        "admin": str(root / "var" / "admin-key"),
        "other_scan": str(root / "var" / "work" / "test_other.abcd" / "src" / "secret.py"),
        "venv": os.path.join(sys.prefix, "lib", "planted.pth"),
        "etc": "/etc/passwd",
    }
    report, out = _run(world, tmp_path, f"""
        targets = {targets!r}
        for name, path in targets.items():
            try:
                out["read_" + name] = open(path).read()[:40]
            except OSError as exc:
                out["read_" + name] = "refused: " + exc.__class__.__name__
            try:
                with open(path, "a") as fh:
                    fh.write("PLANTED")
                out["write_" + name] = "written"
            except OSError as exc:
                out["write_" + name] = "refused: " + exc.__class__.__name__
        try:
            open(os.path.join(os.path.dirname(sys.argv[1]), "allowed.txt"), "w").write("ok")
            out["own_folder"] = "written"
        except OSError as exc:
            out["own_folder"] = "refused: " + exc.__class__.__name__
    """)
    assert report.errors == {}
    for name in targets:
        assert out[f"write_{name}"].startswith("refused"), (name, out)
    for name in ("keys", "admin", "other_scan"):
        assert out[f"read_{name}"].startswith("refused"), (name, out)
    assert out["read_checkout"].startswith("print")  # the checkout is there to be read
    assert out["own_folder"] == "written"
    assert (root / "var" / "keys" / "cosign.key").read_text() == "SIGNING-KEY-MATERIAL"
    assert (source / "app.py").read_text() == "print('hello')\n"
    assert not Path(targets["venv"]).exists()
    assert "PLANTED" not in Path("/etc/passwd").read_text()


def test_the_tool_has_no_network_not_even_to_the_services_redis(world, tmp_path, redis_url):
    parts = urlsplit(redis_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    # The Redis is there for the test process itself...
    socket.create_connection((host, port), timeout=5).close()
    report, out = _run(world, tmp_path, f"""
        import socket
        try:
            socket.create_connection(({host!r}, {port}), timeout=3)
            out["redis"] = "connected"
        except OSError as exc:
            out["redis"] = "refused: " + exc.__class__.__name__
        out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    """)
    assert report.errors == {}
    assert out["redis"].startswith("refused")
    assert out["interfaces"] == ["lo"]


def test_a_fork_without_bound_stops_at_the_process_limit_and_nothing_survives(world, tmp_path):
    marker = f"forkbomb_{uuid.uuid4().hex}.py"  # every child's command line names the script
    report, out = _run(world, tmp_path, """
        import time
        # One that detaches itself, as a daemon would, to outlive the scan.
        if os.fork() == 0:
            os.setsid()
            time.sleep(300)
            os._exit(0)
        children = 0
        for _ in range(5000):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(300)
                os._exit(0)
            children += 1
        out["children"] = children
    """, name=marker, sandbox_max_processes=64)
    assert report.errors == {}
    assert 0 < out["children"] < 64
    assert _alive_with(marker) == []


def test_a_file_past_the_size_limit_cannot_be_written_and_fails_the_tool_closed(world, tmp_path):
    report, _ = _run(world, tmp_path, """
        with open(os.path.join(os.path.dirname(sys.argv[1]), "big.bin"), "wb") as fh:
            for _ in range(64):
                fh.write(b"x" * 1024 * 1024)
    """, sandbox_file_bytes=4 * 1024 * 1024)
    # Python ignores SIGXFSZ and sees EFBIG; a program that does not is killed by it. Either way no
    # report, a tool error, and the file stops at the limit.
    assert "File too large" in report.errors.get("hostile", "") or "SIGXFSZ" in report.errors.get("hostile", "")
    assert (world["work"] / "tools" / "hostile" / "big.bin").stat().st_size <= 4 * 1024 * 1024


def test_filling_the_disk_with_many_files_stops_the_tool_and_fails_it_closed(world, tmp_path):
    report, out = _run(world, tmp_path, """
        import time
        folder = os.path.dirname(sys.argv[1])
        for n in range(100000):
            with open(os.path.join(folder, f"part{n}.bin"), "wb") as fh:
                fh.write(b"x" * 256 * 1024)
            time.sleep(0.001)
        out["finished"] = True
    """, sandbox_file_bytes=1024 * 1024, sandbox_output_bytes=16 * 1024 * 1024)
    assert "wrote more than" in report.errors.get("hostile", ""), report.errors
    written = sum(p.stat().st_size for p in (world["work"] / "tools" / "hostile").glob("part*.bin"))
    assert written < 100000 * 256 * 1024 // 10  # stopped long before the end


def test_the_private_tmp_is_bounded(world, tmp_path):
    report, out = _run(world, tmp_path, """
        written = 0
        try:
            with open("/tmp/fill", "wb") as fh:
                for _ in range(64):
                    fh.write(b"x" * 1024 * 1024)
                    fh.flush()
                    written += 1
            out["tmp"] = "filled"
        except OSError as exc:
            out["tmp"] = "refused: " + exc.__class__.__name__
        out["mib"] = written
    """, sandbox_tmp_bytes=8 * 1024 * 1024)
    assert report.errors == {}
    assert out["tmp"].startswith("refused") and out["mib"] <= 8


def test_memory_past_the_address_space_limit_cannot_be_had(world, tmp_path):
    report, _ = _run(world, tmp_path, """
        hoard = bytearray(1024 * 1024 * 1024)
        out["hoarded"] = len(hoard)
    """, sandbox_memory_bytes=512 * 1024 * 1024)
    assert "MemoryError" in report.errors.get("hostile", ""), report.errors


def test_burning_cpu_past_the_limit_kills_the_tool(world, tmp_path):
    report, _ = _run(world, tmp_path, """
        while True:
            pass
    """, sandbox_cpu_seconds=1)
    assert "SIGXCPU" in report.errors.get("hostile", ""), report.errors


def test_a_worker_without_a_usable_sandbox_refuses_and_says_how_to_fix_it(monkeypatch):
    from workers import sandbox

    sandbox._probe.cache_clear()
    monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
    try:
        with pytest.raises(SandboxUnavailable) as caught:
            Sandbox(Settings()).check()
    finally:
        sandbox._probe.cache_clear()
    assert "apt-get install bubblewrap" in str(caught.value)
    assert "CERTUS_ASSURANCE_SANDBOX=off" in str(caught.value)
    # Off is off: the argv is the tool's own, for development on trusted code only.
    argv, _ = Sandbox(Settings(sandbox="off")).wrap(["/bin/true"], Confinement(), Path("/"))
    assert argv == ["/bin/true"]


def test_settings_never_let_tools_run_as_root():
    from tasks.settings import SettingsError

    for env in ({"CERTUS_ASSURANCE_SANDBOX_UID": "0"}, {"CERTUS_ASSURANCE_SANDBOX_GID": "0"},
                {"CERTUS_ASSURANCE_SANDBOX": "maybe"}):
        with pytest.raises(SettingsError):
            Settings.from_env(env)


def test_what_the_tool_leaves_is_read_without_following_its_links_fifos_or_depth(world, tmp_path):
    """The worker reads the tool's report as itself: a report that is a link to a credentials
    file, a FIFO that would block the read, or folders nested past what a tree walk can recurse
    must not turn that read against the worker."""
    secret = tmp_path / "credentials.json"
    secret.write_text('{"token": "WORKER-ONLY-SECRET"}')
    report, _ = _run(world, tmp_path, f"""
        folder = os.path.dirname(sys.argv[1])
        os.symlink({str(secret)!r}, sys.argv[1])
        os.mkfifo(os.path.join(folder, "results.fifo"))
        os.chdir(folder)
        for _ in range(1500):
            os.mkdir("d")
            os.chdir("d")
        open("deepest.json", "w").write("{{}}")
        os._exit(0)
    """)
    assert "without a report" in report.errors.get("hostile", ""), report.errors
    assert "WORKER-ONLY-SECRET" not in json.dumps(report.errors)
    out = world["work"] / "tools" / "hostile"
    assert not (out / "report.json").exists() and not (out / "results.fifo").exists()
    deepest = max(len(p.relative_to(out).parts) for p in out.rglob("*"))
    assert deepest <= 100 + 1
    shutil.rmtree(out)  # the worker's own clean-up copes with what is left
