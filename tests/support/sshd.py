"""A real OpenSSH server on loopback that serves git over ssh to the current user, who may log in
only with the one key made for the test: the protocol an ssh git host speaks."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

from stack.ports import free_port, wait_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class Sshd:
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.user = getpass.getuser()
        self.port = free_port()
        host_key = _keygen(base / "host_key")
        self.client_key = _keygen(base / "client_key")
        (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
        (base / "authorized_keys").chmod(0o600)
        host_line = " ".join((base / "host_key.pub").read_text().split()[:2])
        # The host key under the name ssh looks it up by off port 22, for the two ways tests name it.
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text("".join(f"[{name}]:{self.port} {host_line}\n"
                                            for name in ("localhost", "127.0.0.1")))
        config = base / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"PidFile {base / 'sshd.pid'}", f"AuthorizedKeysFile {base / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "PermitRootLogin prohibit-password", ""]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
        self.log = (base / "sshd.log").open("wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log)
        wait_port("127.0.0.1", self.port, 30)

    def url(self, repo: Path, host: str = "localhost") -> str:
        return f"ssh://{self.user}@{host}:{self.port}{repo.resolve()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
