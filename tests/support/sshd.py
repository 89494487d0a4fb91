"""An SSH server on loopback that serves git over ssh (`git-upload-pack` for the path asked) to
whoever holds the one key made for the test: the protocol an ssh git host speaks, to the real
`ssh` client. The server is asyncssh, run in a thread, so the tests need no system sshd (whose
package would also install and start a service on the machine)."""

from __future__ import annotations

import asyncio
import getpass
import shlex
import threading
from pathlib import Path

import asyncssh

from stack.ports import free_port


class Sshd:
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.user = getpass.getuser()
        self.port = free_port()
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = base / "client_key"
        self.client_key.write_bytes(client_key.export_private_key("openssh"))
        self.client_key.chmod(0o600)  # ssh ignores a key others may read
        (base / "authorized_keys").write_bytes(client_key.export_public_key("openssh"))
        host_line = host_key.export_public_key("openssh").decode().strip()
        # The host key under the name ssh looks it up by off port 22, for the two ways tests name it.
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text("".join(f"[{name}]:{self.port} {host_line}\n"
                                            for name in ("localhost", "127.0.0.1")))
        self.commands: list[list[str]] = []
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(host_key, started), daemon=True).start()
        if not started.wait(30):
            raise TimeoutError("the SSH server did not start")

    def _run(self, host_key: asyncssh.SSHKey, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", self.port, server_host_keys=[host_key],
            authorized_client_keys=str(self.base / "authorized_keys"), process_factory=self._serve,
            encoding=None, allow_scp=False))
        started.set()
        self._loop.run_forever()

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        argv = shlex.split(process.command or "")
        self.commands.append(argv)
        if len(argv) != 2 or argv[0] != "git-upload-pack":  # a git host runs nothing else
            process.stderr.write(b"only git-upload-pack is served here\n")
            process.exit(128)
            return
        git = await asyncio.create_subprocess_exec(
            "git", "upload-pack", argv[1], stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        await process.redirect(stdin=git.stdin, stdout=git.stdout, stderr=git.stderr)
        process.exit(await git.wait())
        await process.wait_closed()  # runs the redirect's clean-up before the session goes

    def url(self, repo: Path, host: str = "localhost") -> str:
        return f"ssh://{self.user}@{host}:{self.port}{repo.resolve()}"

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
