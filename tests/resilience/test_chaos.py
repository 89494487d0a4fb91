"""Chaos on `make cluster`: 30 scans and 10 uploads while a seeded, bounded loop kills an API
replica, a worker's main process, a pool child, Redis (restarted by the cluster), the Trust
service, the S3 server and the registry. Afterwards every scan in the store has completed exactly
once (one `scan_complete`, one bundle, one attestation), every upload ended `uploaded` (all of it
promoted and pushed) or with a reason (nothing promoted), every client that followed a stream
through the load balancer, reconnecting with `?after=`, got the whole stream exactly once, and no
process of the cluster is left running.

The seed is printed; `CHAOS_SEED=n` replays a run's choices. The S3 server (moto) keeps its
objects in memory, so its outage is a proxy in front of it refusing and dropping connections; the
Trust service and the registry are killed (SIGKILL) and started again on the same port and data.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import websocket

from stack import processes
from stack.ports import wait_port
from tests.support.cluster import output, running_cluster, state, store
from tests.support.gitrepos import GitDaemon, make_repo
from tests.support.outage import OutageProxy
from tests.support.uploads_servers import REGISTRY_BIN, MotoS3, Registry, TrustServer
from workers.signing import signing_keys
from workers.signing.attestation import ATTESTATION_PATH

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
SCANS = 30
UPLOADS = 10
# Each kind at least once and 3 more at random, Redis once: no process is restarted more often than
# the cluster's crash-loop limit (5 within 300 s) allows, and Redis is back (after the cluster's
# 1 s pause) well within LEASE_SECONDS, the outage workers ride out (docs/reliability.md).
EVENTS = 10
KINDS = ("api", "worker", "pool_child", "redis", "trust", "s3", "registry")
FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
UPLOAD_FINAL = ("uploaded", "denied", "upload_failed")
PASSWORD = "chaos-signing-password"  # noqa: S105


def _seed() -> int:
    return int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 1 << 30))


# -- the servers around the cluster ---------------------------------------------------------------
@dataclass
class Outside:
    moto: MotoS3
    s3: OutageProxy
    registry: Registry
    trust: TrustServer

    def kill_registry(self, pause: float) -> None:
        assert self.registry.proc is not None
        self.registry.proc.kill()
        self.registry.proc.wait()
        time.sleep(pause)
        self.registry.proc = processes.spawn([REGISTRY_BIN, "serve", str(self.registry.workdir / "config.yml")],
                                             {}, self.registry.workdir / "registry.log")
        wait_port("127.0.0.1", self.registry.port, 30)

    def kill_trust(self, pause: float) -> None:
        assert self.trust.proc is not None
        self.trust.proc.kill()
        self.trust.proc.wait()
        self.trust.proc = None
        time.sleep(pause)
        self.trust.start()  # the same port, certificate and keys

    def s3_outage(self, pause: float) -> None:
        self.s3.down()
        time.sleep(pause)
        self.s3.up()


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chaos-outside")
    signing_keys.generate_key_pair(tmp / "keys", PASSWORD)
    moto = MotoS3().start()
    for bucket in ("chaos-raw", "chaos-golden"):
        moto.client().create_bucket(Bucket=bucket)
    s3 = OutageProxy(moto.port)
    registry = Registry(tmp / "registry").start()
    trust = TrustServer(tmp / "trust", {"certus-assurance": tmp / "keys" / "cosign.pub"}).start()
    try:
        yield tmp, Outside(moto, s3, registry, trust)
    finally:
        trust.stop()
        registry.stop()
        s3.stop()
        moto.stop()


@pytest.fixture(scope="module")
def cluster(outside, tmp_path_factory):
    keydir, servers = outside
    settings = {
        "CERTUS_ASSURANCE_SIGNING_KEY_DIR": str(keydir / "keys"),
        "COSIGN_PASSWORD": PASSWORD,
        "CERTUS_ASSURANCE_OSV_DB_PATH": str(ROOT / "tests" / "fixtures" / "osv"),
        # A lapsed lease is noticed within seconds.
        "CERTUS_ASSURANCE_LEASE_SECONDS": "6",
        "CERTUS_ASSURANCE_SWEEP_INTERVAL": "2",
        "CERTUS_ASSURANCE_RATE_LIMIT_PER_MINUTE": "60000",
        "CERTUS_ASSURANCE_RATE_LIMIT_BURST": "5000",
        "CERTUS_ASSURANCE_MAX_WS_PER_KEY": "200",
        "CERTUS_ASSURANCE_TRUST_BASE_URL": servers.trust.url,
        "CERTUS_ASSURANCE_TRUST_CA_BUNDLE": str(servers.trust.cert),
        "CERTUS_ASSURANCE_TRUST_TIMEOUT": "10",
        "CERTUS_ASSURANCE_S3_ENDPOINT_URL": servers.s3.url,
        "CERTUS_ASSURANCE_DATALAKE_RAW_BUCKET": "chaos-raw",
        "CERTUS_ASSURANCE_DATALAKE_GOLDEN_BUCKET": "chaos-golden",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CERTUS_ASSURANCE_REGISTRY": servers.registry.host,
        "CERTUS_ASSURANCE_REGISTRY_PLAIN_HTTP": "true",
        "CERTUS_ASSURANCE_UPLOAD_RETRY_BACKOFF": "2",
    }
    with running_cluster(tmp_path_factory.mktemp("chaos-cluster"), settings) as info:
        info["servers"] = servers
        yield info


# -- the processes of the cluster, as they come and go --------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent, start time) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[1]), int(fields[19])) if fields[0] != "Z" else None


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


class Census:
    """Every process that ever ran under the cluster's launcher (by pid and start time)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def take(self) -> None:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (st := _stat(int(entry))):
                stats[int(entry)] = st
        family = {self.root} | set(self.seen)
        grew = True
        while grew:
            grew = False
            for pid, (parent, _) in stats.items():
                if parent in family and pid not in family:
                    family.add(pid)
                    grew = True
        for pid in family:
            if pid in stats and pid not in self.seen:
                self.seen[pid] = stats[pid][1]

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.take()

    def alive(self) -> list[int]:
        return [pid for pid, started in self.seen.items() if (st := _stat(pid)) and st[1] == started]


# -- the chaos ------------------------------------------------------------------------------------
@dataclass
class Chaos:
    cluster: dict
    rng: random.Random
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def plan(self) -> list[str]:
        kinds = list(KINDS)
        self.rng.shuffle(kinds)
        return kinds + self.rng.choices([k for k in KINDS if k != "redis"], k=EVENTS - len(KINDS))

    def run(self) -> None:
        for kind in self.plan():
            if self.stop.wait(self.rng.uniform(2, 5)):
                return
            try:
                self.done.append(f"{time.strftime('%H:%M:%S')} {getattr(self, kind)()}")
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{kind}: {exc!r}")
                return

    def _kill(self, name: str, sig: int = signal.SIGKILL) -> str:
        deadline = time.monotonic() + 60
        while not (pid := state(self.cluster)["redis_pid"] if name == "redis" else state(self.cluster)["pids"][name]):
            assert time.monotonic() < deadline, f"{name} was not started again"
            time.sleep(0.2)  # still being restarted after the last fault
        os.kill(pid, sig)
        return f"{signal.Signals(sig).name} {name} (pid {pid})"

    def api(self) -> str:
        return self._kill(self.rng.choice(["api1", "api2"]))

    def _busy(self, names: list[str]) -> dict[str, list[int]]:
        """The pool children of each named worker that are running something (a clone, a scanner)."""
        pids = state(self.cluster)["pids"]
        return {name: [c for c in _children(pids[name]) if _children(c)] if pids[name] else [] for name in names}

    def worker(self) -> str:
        names = ["scans1", "scans2", "uploads1"]
        busy = [name for name, children in self._busy(names).items() if children]
        return self._kill(self.rng.choice(busy or names))  # one at work, when there is one

    def pool_child(self) -> str:
        busy = self._busy(["scans1", "scans2"])
        name = self.rng.choice(sorted(n for n in busy if busy[n]) or ["scans1", "scans2"])
        main = state(self.cluster)["pids"][name]
        children = busy[name] or (_children(main) if main else [])
        if not children:
            return f"{name} had no pool child"
        child = self.rng.choice(children)
        os.kill(child, signal.SIGKILL)
        return f"SIGKILL pool child {child} of {name}"

    def redis(self) -> str:
        return self._kill("redis", signal.SIGTERM)  # AOF: a restart, not a host crash

    def trust(self) -> str:
        pause = self.rng.uniform(1, 4)
        self.cluster["servers"].kill_trust(pause)
        return f"killed the Trust service for {pause:.1f} s"

    def s3(self) -> str:
        pause = self.rng.uniform(1, 4)
        self.cluster["servers"].s3_outage(pause)
        return f"S3 down for {pause:.1f} s"

    def registry(self) -> str:
        pause = self.rng.uniform(1, 4)
        self.cluster["servers"].kill_registry(pause)
        return f"killed the registry for {pause:.1f} s"


# -- the clients ----------------------------------------------------------------------------------
def call(method: str, url: str, http: requests.Session, deadline: float, launcher: subprocess.Popen[bytes],
         **kwargs) -> requests.Response | None:
    """A request retried while the cluster answers it with an outage (502/503/504 or no answer);
    None if it never got another answer."""
    while time.monotonic() < deadline:
        assert launcher.poll() is None, "the cluster stopped (see its cluster-stdout.log)"
        try:
            resp = http.request(method, url, timeout=30, **kwargs)
        except requests.RequestException:
            resp = None
        if resp is not None and resp.status_code not in (502, 503, 504):
            return resp
        time.sleep(1)
    return None


@dataclass
class Follower:
    """A client following one scan's stream through the load balancer to its `scan_complete`,
    reconnecting with `?after=` the last id it received."""
    url: str
    headers: list[str]
    ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    reconnects: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, deadline: float) -> None:
        while time.monotonic() < deadline and not self.stop.is_set():
            after = self.ids[-1] if self.ids else "0-0"
            try:
                ws = websocket.create_connection(f"{self.url}?after={after}", timeout=30, header=self.headers)
                try:
                    while True:
                        if self.stop.is_set():
                            return
                        opcode, frame = ws.recv_data_frame(True)
                        if opcode == websocket.ABNF.OPCODE_CLOSE:
                            break
                        if opcode == websocket.ABNF.OPCODE_TEXT:
                            event = json.loads(frame.data)
                            self.ids.append(event["id"])
                            self.types.append(event["type"])
                            if event["type"] == "scan_complete":
                                return
                finally:
                    ws.close()
            except (websocket.WebSocketException, OSError, ValueError):
                pass
            self.reconnects += 1
            time.sleep(0.5)


def _repos(git_server: GitDaemon, slow_git: OutageProxy) -> list[str]:
    urls = []
    for i in range(3):
        make_repo(git_server.base, f"chaos-{i}", {
            "app.py": f"import subprocess\n\nsubprocess.call('echo {i}', shell=True)\n",
            "requirements.txt": "requests==2.19.0\n" if i == 0 else "flask==2.3.2\n"})
        urls.append(f"git://127.0.0.1:{slow_git.port}/chaos-{i}")
    return urls


def test_chaos_loses_nothing_doubles_nothing_and_leaves_nothing_running(cluster, git_server):
    seed = _seed()
    print(f"chaos seed: {seed} (CHAOS_SEED={seed} replays it)", flush=True)
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + 600
    http, url = cluster["http"], cluster["url"]
    census = Census(cluster["proc"].pid)
    # Clones wait a few seconds for the git server: scans last long enough to be hit, and queue up.
    delays = random.Random(rng.random())
    slow_git = OutageProxy(git_server.port, delay=lambda: delays.uniform(1, 5))
    repos = _repos(git_server, slow_git)
    chaos = Chaos(cluster, random.Random(rng.random()))
    chaos_thread = threading.Thread(target=chaos.run, daemon=True)
    chaos_thread.start()

    accepted: list[str] = []
    followers: dict[str, Follower] = {}
    uploads: list[str] = []
    pool = ThreadPoolExecutor(SCANS + 4)
    follow_jobs = []
    ws_base = url.replace("http://", "ws://")
    def record(test_id: str) -> dict:
        resp = call("GET", f"{url}/v1/security-scans/{test_id}", http, deadline, cluster["proc"])
        assert resp is not None and resp.status_code == 200
        return dict(resp.json())

    def request_uploads(pending: list[str]) -> None:
        """An upload for each of the first scans to succeed."""
        for test_id in list(pending):
            if len(uploads) >= UPLOADS:
                return
            status = record(test_id)["status"]
            if status not in FINISHED:
                continue
            pending.remove(test_id)
            if status == "SUCCEEDED":
                resp = call("POST", f"{url}/v1/security-scans/{test_id}/upload-request", http, deadline,
                            cluster["proc"], json={})
                assert resp is not None and resp.status_code in (202, 409), resp and resp.text
                uploads.append(test_id)

    pending: list[str] = []
    try:
        # The scans go in over the chaos' whole run, and the uploads as the first scans succeed.
        for i in range(SCANS):
            resp = call("POST", url + "/v1/security-scans", http, deadline, cluster["proc"], json={
                "workspace_id": "ws-chaos", "component_id": f"c{i}", "assessment_id": "a-1",
                "git_url": repos[i % len(repos)], "profile": "smoke"})
            if resp is not None and resp.status_code == 202:
                test_id = resp.json()["test_id"]
                accepted.append(test_id)
                pending.append(test_id)
                follower = followers[test_id] = Follower(f"{ws_base}/v1/security-scans/{test_id}/stream",
                                                         [f"Authorization: {http.headers['Authorization']}"])
                follow_jobs.append(pool.submit(follower.run, deadline))
            request_uploads(pending)
            time.sleep(rng.uniform(0.5, 2.5))
        assert len(accepted) >= SCANS - 3, f"only {len(accepted)} scans accepted"
        while len(uploads) < UPLOADS and pending and time.monotonic() < deadline:
            request_uploads(pending)
            time.sleep(1)
        assert len(uploads) == UPLOADS, f"{len(uploads)} uploads requested"
        chaos_thread.join(max(1, deadline - time.monotonic()))  # every fault has happened

        for job in follow_jobs:
            job.result(timeout=max(1, deadline - time.monotonic()))
        records = {}
        for test_id in accepted:
            while (rec := record(test_id))["status"] not in FINISHED:
                assert time.monotonic() < deadline, rec
                time.sleep(1)
            records[test_id] = rec
        for test_id in uploads:
            while (rec := record(test_id)).get("upload_status") not in UPLOAD_FINAL:
                assert time.monotonic() < deadline, rec
                time.sleep(1)
            records[test_id] = rec
    finally:
        chaos.stop.set()
        chaos_thread.join(60)
        for follower in followers.values():
            follower.stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        slow_git.stop()
        print("chaos:", *chaos.done, sep="\n  ", flush=True)
    elapsed = time.monotonic() - started
    print(f"{len(accepted)} scans, {len(uploads)} uploads, {len(chaos.done)} faults in {elapsed:.0f} s", flush=True)
    assert not chaos.errors and len(chaos.done) == EVENTS, chaos.errors

    # Every scan in the store (a submit whose answer was lost included) completed exactly once.
    db = store(cluster)
    all_scans = sorted(k.split(":", 2)[2] for k in db.scan_iter("ca:scan:*"))
    assert set(accepted) <= set(all_scans)
    artifacts = cluster["folder"] / "artifacts"
    for test_id in all_scans:
        stored = db.xrange(f"ca:events:{test_id}")
        types = [json.loads(data["e"])["type"] for _, data in stored]
        status = json.loads(db.hget(f"ca:scan:{test_id}", "status") or "null")
        assert status in FINISHED and types.count("scan_complete") == 1, (test_id, status, types)
        bundle = artifacts / test_id
        assert bundle.is_dir() and (bundle / ATTESTATION_PATH).is_file(), test_id
        assert not list(artifacts.glob(f".staging/{test_id}*")), test_id
        if test_id in followers:
            ids = [entry_id for entry_id, _ in stored]
            got = followers[test_id].ids
            assert got == ids[: ids.index(got[-1]) + 1] and got[-1] == ids[types.index("scan_complete")], test_id
            assert len(set(got)) == len(got)
    statuses = [json.loads(db.hget(f"ca:scan:{t}", "status")) for t in all_scans]
    attempts = [json.loads(db.hget(f"ca:scan:{t}", "attempt") or "1") for t in all_scans]
    print("scan statuses:", {s: statuses.count(s) for s in set(statuses)},
          "attempts:", {a: attempts.count(a) for a in set(attempts)},
          "reconnects:", sum(f.reconnects for f in followers.values()), flush=True)
    assert statuses.count("SUCCEEDED") >= len(all_scans) - 2, statuses

    # Every upload ended, promoted and pushed entirely, or not at all and with a reason.
    s3 = cluster["servers"].moto.client()
    registry = cluster["servers"].registry.host
    for test_id in uploads:
        rec = records[test_id]
        golden = s3.list_objects_v2(Bucket="chaos-golden", Prefix=f"security-scans/{test_id}/")
        names = {o["Key"].split(f"{test_id}/", 1)[1] for o in golden.get("Contents", [])}
        manifest = requests.get(f"http://{registry}/v2/certus/security-scans/manifests/{test_id}", timeout=10,
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        if rec["upload_status"] == "uploaded":
            envelope = json.loads((artifacts / test_id / ATTESTATION_PATH).read_text())
            attested = {f"golden/{s['name']}" for s in json.loads(base64.b64decode(envelope["payload"]))["subject"]}
            assert attested and attested <= names and "permit.json" in names, (test_id, names)
            assert manifest.status_code == 200, (test_id, manifest.status_code)
        else:
            # A Trust that cannot be reached is asked again (a restart is waited out): no upload is
            # denied for an outage, and none that ended without publishing is half-promoted.
            assert rec["upload_status"] == "upload_failed", rec
            assert rec.get("upload_reason"), rec
            assert "permit.json" not in names and not any(n.startswith("golden/") for n in names), (test_id, names)
    print("uploads:", {t: (records[t]["upload_status"], records[t].get("upload_reason")) for t in uploads}, flush=True)

    # Ctrl-C: the cluster stops in order and nothing it ever started is left running.
    census.take()
    proc = cluster["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(180) == 0, output(cluster)[-3000:]
    census.stop.set()
    time.sleep(1)
    left = census.alive()
    print(f"{len(census.seen)} processes ran under the cluster; {len(left)} left", flush=True)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left]
