"""Redis as production runs it: TLS (`rediss://`) with a password, and Sentinel with passwords on
both the master and the Sentinels. A real redis-server on loopback; a scan runs end to end through
the API, the broker and the stream over each."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from stack.ports import free_port, wait_port
from stack.redis_server import RedisServer
from tasks.redis_client import connect
from tasks.settings import Settings
from tests.support.service import Service, base_env
from tests.support.tlscerts import make_tls_files
from tests.support.ws import read_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
PASSWORD = "redis-test-password"
SENTINEL_PASSWORD = "sentinel-test-password"


def _system_redis() -> str:
    path = shutil.which("redis-server")
    if not path:
        pytest.fail("redis-server is not installed: run scripts/system-deps.sh")
    return path


def _scan_end_to_end(tmp_path: Path, env: dict[str, str], repo_url: str) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    svc = Service(env=env, workdir=tmp_path)
    try:
        svc.start_worker("w", queues="scans,uploads", concurrency=1)
        svc.start_api()
        svc.wait_workers(1, timeout=120)
        resp = svc.submit(git_url=repo_url, profile="smoke")
        assert resp.status_code == 202, resp.text
        stream = read_stream(svc.ws_url(resp.json()["stream_url"]), timeout=300, headers=svc.ws_headers)
        assert stream.close_code == 1000 and stream.types[-1] == "scan_complete"
        assert stream.events[-1]["status"] == "SUCCEEDED"
        assert svc.http.get(svc.url("/ready"), timeout=10).status_code == 200
    finally:
        svc.stop()


def _start_tls_redis(folder: Path, tls, *extra: str) -> tuple[int, RedisServer]:
    """A redis-server on loopback that speaks only TLS (certificates from ``tls``), with a password."""
    port = free_port()
    server = RedisServer(folder, port=free_port(), extra_args=[
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key),
        "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "optional", "--requirepass", PASSWORD, *extra])
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.proc = subprocess.Popen(server.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.1", port, 20)
    return port, server


def _wait_until_answering(url: str, settings: Settings) -> None:
    """Until Redis at ``url`` answers a ping (a Sentinel needs a moment to name its master)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            assert connect(url, settings=settings).ping()
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, f"nothing answered at {url.split('@')[-1]}"
            time.sleep(0.3)


@pytest.fixture()
def tls_redis(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    port, server = _start_tls_redis(tmp_path / "redis-tls", tls)
    try:
        yield port, tls
    finally:
        server.stop()


def test_tls_redis_with_a_password(tmp_path, tls_redis, vulnerable_repo):
    _system_redis()
    port, tls = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
    settings = Settings(redis_url=url, redis_tls_ca_file=str(tls.ca))
    _wait_until_answering(url, settings)
    # Fail closed: a certificate from an unknown CA, or a wrong password, is refused.
    other = make_tls_files(tmp_path / "other")
    with pytest.raises(redis.ConnectionError):
        connect(url, settings=Settings(redis_url=url, redis_tls_ca_file=str(other.ca))).ping()
    with pytest.raises(redis.AuthenticationError):
        connect(url.replace(PASSWORD, "wrong"), settings=settings).ping()
    env = base_env(tmp_path, url, CERTUS_ASSURANCE_REDIS_TLS_CA_FILE=str(tls.ca))
    _scan_end_to_end(tmp_path / "svc", env, vulnerable_repo["url"])


def _start_sentinel(folder, master_port: int, *extra: str, tls: bool = False) -> tuple[int, subprocess.Popen]:
    """One Sentinel on loopback watching master ``certus``; ``extra`` lines go into its config.
    With ``tls`` it listens for TLS only (``extra`` names its files)."""
    port = free_port()
    folder.mkdir()
    conf = folder / "sentinel.conf"
    conf.write_text("\n".join([
        *(["port 0", f"tls-port {port}"] if tls else [f"port {port}"]), "bind 127.0.0.1", f"dir {folder}",
        f"sentinel monitor certus 127.0.0.1 {master_port} 1",
        f"sentinel auth-pass certus {PASSWORD}", *extra, ""]))
    proc = subprocess.Popen([_system_redis(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port, 20)
    except BaseException:
        proc.terminate()
        raise
    return port, proc


@pytest.fixture()
def sentinel(tmp_path):
    _system_redis()
    master = RedisServer(tmp_path / "master", extra_args=["--requirepass", PASSWORD, "--masterauth", PASSWORD]).start()
    port, proc = _start_sentinel(tmp_path / "sentinel", master.port, "sentinel down-after-milliseconds certus 5000",
                                 f"requirepass {SENTINEL_PASSWORD}")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        master.stop()


def test_sentinel_with_passwords(tmp_path, sentinel, vulnerable_repo):
    url = f"sentinel://:{PASSWORD}@127.0.0.1:{sentinel}/0"
    settings = Settings(redis_url=url, redis_sentinel_master="certus", redis_sentinel_password=SENTINEL_PASSWORD)
    _wait_until_answering(url, settings)
    # Without the Sentinels' password there is no master to be had.
    bad = Settings(redis_url=url, redis_sentinel_master="certus", redis_sentinel_password="wrong")
    with pytest.raises(redis.RedisError):
        connect(url, settings=bad).ping()
    env = base_env(tmp_path, url, CERTUS_ASSURANCE_REDIS_SENTINEL_MASTER="certus",
                   CERTUS_ASSURANCE_REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD)
    _scan_end_to_end(tmp_path / "svc", env, vulnerable_repo["url"])


def test_sentinel_and_master_over_tls(tmp_path, vulnerable_repo):
    # Sentinels and the master they name speak only TLS; clients check both against the CA.
    tls = make_tls_files(tmp_path / "tls")
    master_port, master = _start_tls_redis(tmp_path / "master", tls, "--tls-replication", "yes",
                                           "--masterauth", PASSWORD)
    sentinel_port, proc = _start_sentinel(
        tmp_path / "sentinel", master_port, "sentinel down-after-milliseconds certus 5000",
        f"tls-cert-file {tls.cert}", f"tls-key-file {tls.key}", f"tls-ca-cert-file {tls.ca}",
        "tls-auth-clients optional", "tls-replication yes", tls=True)
    try:
        url = f"sentinel://:{PASSWORD}@127.0.0.1:{sentinel_port}/0"
        settings = Settings(redis_url=url, redis_sentinel_master="certus", redis_sentinel_tls=True,
                            redis_tls_ca_file=str(tls.ca))
        _wait_until_answering(url, settings)
        # Fail closed: without TLS nothing answers, and another CA's certificate is refused.
        with pytest.raises(redis.RedisError):
            connect(url, settings=Settings(redis_url=url, redis_sentinel_master="certus")).ping()
        other = make_tls_files(tmp_path / "other")
        with pytest.raises(redis.RedisError):
            connect(url, settings=Settings(redis_url=url, redis_sentinel_master="certus", redis_sentinel_tls=True,
                                           redis_tls_ca_file=str(other.ca))).ping()
        env = base_env(tmp_path, url, CERTUS_ASSURANCE_REDIS_SENTINEL_MASTER="certus",
                       CERTUS_ASSURANCE_REDIS_SENTINEL_TLS="true", CERTUS_ASSURANCE_REDIS_TLS_CA_FILE=str(tls.ca))
        _scan_end_to_end(tmp_path / "svc", env, vulnerable_repo["url"])
    finally:
        proc.terminate()
        proc.wait(10)
        master.stop()


def test_clients_follow_a_sentinel_failover(tmp_path):
    _system_redis()
    auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
    master = RedisServer(tmp_path / "m", extra_args=auth).start()
    replica = RedisServer(tmp_path / "r", extra_args=[*auth, "--replicaof", "127.0.0.1", str(master.port)]).start()
    port, proc = _start_sentinel(tmp_path / "s", master.port, "sentinel down-after-milliseconds certus 1000",
                                 "sentinel failover-timeout certus 10000")
    try:
        url = f"sentinel://:{PASSWORD}@127.0.0.1:{port}/0"
        client = connect(url, settings=Settings(redis_url=url, redis_sentinel_master="certus"))
        sentinel_client = redis.Redis(port=port, decode_responses=True)
        # Wait until the Sentinel knows the replica (it learns it from the master's INFO).
        deadline = time.monotonic() + 60
        while int(sentinel_client.sentinel_master("certus").get("num-slaves", 0)) < 1:
            assert time.monotonic() < deadline, "the Sentinel never saw the replica"
            time.sleep(0.5)
        replica_client = redis.Redis(port=replica.port, password=PASSWORD, decode_responses=True)
        while replica_client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never finished its first sync"
            time.sleep(0.5)
        client.set("ca:failover", "before")
        assert client.wait(1, 30000) == 1  # replicated before the master goes away
        master.stop()
        deadline = time.monotonic() + 90
        while True:
            try:
                client.set("ca:failover:after", "written")  # only a master accepts writes
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "the client never reached the promoted replica"
                time.sleep(0.5)
        assert client.get("ca:failover") == "before"
        host, new_port = sentinel_client.sentinel_get_master_addr_by_name("certus")
        assert int(new_port) == replica.port
    finally:
        proc.terminate()
        proc.wait(10)
        replica.stop()
        master.stop()
