"""The compose stack: valid for the compose client (or its schema), shaped for production, its
.env.example in step with tasks/settings.py and its haproxy.cfg with the template `make cluster`
renders too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from stack.compose_env import render
from stack.haproxy_cfg import haproxy_executable, render_cluster, render_compose
from tasks.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
APP_SERVICES = ("api", "worker-scans", "worker-uploads", "flower", "trust")


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def _compose_project(tmp_path: Path) -> Path:
    """A copy of compose/ with .env made from .env.example plus placeholder secrets."""
    project = tmp_path / "compose"
    shutil.copytree(COMPOSE, project)
    env = (COMPOSE / ".env.example").read_text()
    for name in ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        env = env.replace(f"\n{name}=\n", f"\n{name}=placeholder-{name.lower()}\n")
    (project / ".env").write_text(env)
    return project


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _schema_file() -> Path | None:
    """The compose-spec JSON schema the installed compose client validates with."""
    for base in ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages"):
        path = Path(base) / "compose" / "config" / "compose_spec.json"
        if path.is_file():
            return path
    return None


def test_env_example_lists_every_setting_with_its_default():
    text = (COMPOSE / ".env.example").read_text()
    assert text == render(), "compose/.env.example is stale: run `make compose-env`"
    values = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    for f in fields(Settings):
        name = PREFIX + f.name.upper()
        assert name in values, name
    # What the file says is what the service would use: parsing it yields the defaults.
    parsed = Settings.from_env({k: v for k, v in values.items() if k.startswith(PREFIX)})
    assert parsed == Settings()
    # No secret has a value in the example.
    for name in ("REDIS_PASSWORD", "FLOWER_BASIC_AUTH", "MINIO_ROOT_PASSWORD"):
        assert values[name] == ""


def test_compose_file_validates_with_the_compose_client(tmp_path):
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client; the schema test below still runs")
    project = _compose_project(tmp_path)
    out = subprocess.run([*client, "-f", str(project / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=project, timeout=120)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(APP_SERVICES) <= set(resolved["services"])
    api_env = resolved["services"]["api"]["environment"]
    assert api_env["CERTUS_ASSURANCE_REDIS_URL"] == "redis://:placeholder-redis_password@redis:6379/0"
    assert api_env["CERTUS_ASSURANCE_DATABASE_URL"] == \
        "postgresql://certus:placeholder-postgres_password@postgres:5432/certus"
    # Missing secrets are refused, not defaulted.
    (project / ".env").write_text((project / ".env").read_text().replace("REDIS_PASSWORD=placeholder",
                                                                         "REDIS_PASSWORD_UNUSED=x"))
    refused = subprocess.run([*client, "-f", str(project / "docker-compose.yml"), "config"],
                             capture_output=True, text=True, cwd=project, timeout=120)
    assert refused.returncode != 0 and "REDIS_PASSWORD" in refused.stderr


def test_compose_file_matches_the_compose_spec_schema():
    import jsonschema

    schema_path = _schema_file()
    if schema_path is None and _compose_client() is None:
        pytest.fail("neither a compose client nor the compose-spec schema: run scripts/system-deps.sh")
    if schema_path is None:
        pytest.skip("the compose client validated the file above")
    schema = json.loads(schema_path.read_text())
    document = _compose()
    jsonschema.validate(document, schema)
    # The validator really checks: a wrong type is caught.
    broken = _compose()
    broken["services"]["api"]["healthcheck"]["retries"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_stack_is_shaped_for_production():
    doc = _compose()
    services = doc["services"]
    assert {"redis", "postgres", "api", "lb", "worker-scans", "worker-uploads", "flower", "minio", "registry",
            "trust"} <= set(services)
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no health check"
    # One image for API, workers, Flower and Trust.
    images = {services[n]["image"] for n in APP_SERVICES}
    builds = {json.dumps(services[n]["build"], sort_keys=True) for n in APP_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    assert services["api"]["build"]["dockerfile"] == "compose/Dockerfile"
    # Scalable services: no fixed name, no host port.
    for name in ("api", "worker-scans", "worker-uploads"):
        assert "container_name" not in services[name] and "ports" not in services[name], name
    # Redis keeps an append-only file and never evicts queue keys.
    command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in command and "noeviction" in command
    # Queues: one pool per queue.
    assert "scans" in " ".join(services["worker-scans"]["command"])
    assert services["worker-uploads"]["command"][services["worker-uploads"]["command"].index("--queues") + 1] \
        == "uploads"
    # Workers get the time to finish their scans on SIGTERM (warm shutdown).
    assert services["worker-scans"]["stop_signal"] == "SIGTERM"
    assert services["worker-scans"]["stop_grace_period"].endswith("m")
    assert "tasks.flower_app" in services["flower"]["command"]
    assert services["trust"]["command"][:3] == ["python", "-m", "trust_service"]


def test_no_secret_is_baked_in():
    text = (COMPOSE / "docker-compose.yml").read_text() + (COMPOSE / "Dockerfile").read_text()
    found = 0
    for match in re.finditer(r"(?m)^\s*(?:ENV\s+)?[A-Z_]*(PASSWORD|SECRET|AUTH|TOKEN|KEY)[A-Z_]*\s*[:=]\s*(\S+)",
                             text):
        found += 1
        assert match.group(2).startswith("${"), match.group(0)
    assert found >= 3  # REDISCLI_AUTH, FLOWER_BASIC_AUTH, MINIO_ROOT_PASSWORD
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    assert "USER certus" in dockerfile
    assert not re.search(r"(?im)^\s*(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN)", dockerfile)


def test_load_balancer_configs_are_valid_for_haproxy(tmp_path):
    haproxy = haproxy_executable()
    cluster_cfg = tmp_path / "cluster.cfg"
    cluster_cfg.write_text(render_cluster("127.0.0.1:1", {"api1": 2, "api2": 3}))
    out = subprocess.run([haproxy, "-c", "-f", str(cluster_cfg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    compose_cfg = (COMPOSE / "haproxy.cfg").read_text()
    assert "timeout tunnel 1h" in compose_cfg and "server-template api" in compose_cfg
    out = subprocess.run([haproxy, "-c", "-f", str(COMPOSE / "haproxy.cfg")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_haproxy_cfg_is_the_rendered_template():
    text = (COMPOSE / "haproxy.cfg").read_text()
    assert text == render_compose(), \
        "compose/haproxy.cfg is stale: python -m stack.haproxy_cfg --compose > compose/haproxy.cfg"


def _section(cfg: str, header: str) -> list[str]:
    lines = cfg.splitlines()
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start:end] if line.strip() and not line.strip().startswith("#")]


def test_cluster_and_compose_balance_and_guard_alike():
    """What differs is only where the replicas are (and the route header `make cluster` adds for tests)."""
    cluster = render_cluster("127.0.0.1:8080", {"api1": 2, "api2": 3})
    compose = render_compose()
    for cfg in (cluster, compose):
        assert "balance leastconn" in _section(cfg, "backend api_replicas")
        assert "http-request deny deny_status 404 if { path /metrics }" in _section(cfg, "frontend api")
    assert _section(cluster, "defaults") == _section(compose, "defaults")
    assert [line for line in _section(cluster, "frontend api") if not line.startswith("bind")] \
        == [line for line in _section(compose, "frontend api") if not line.startswith("bind")]
    assert "X-Certus-Route" in cluster and "X-Certus-Route" not in compose
    assert "X-Certus-Route" not in render_cluster("127.0.0.1:8080", {"api1": 2}, allow_routing=False)


def test_alert_rules_are_well_formed():
    rules = yaml.safe_load((COMPOSE / "alert-rules.yml").read_text())
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert len(names) == len(set(names)) >= 5
    text = (COMPOSE / "alert-rules.yml").read_text()
    for metric in ("certus_queue_depth", "certus_workers_online", "certus_scans_finished_total",
                   "certus_tool_failures_total", "certus_scan_duration_seconds_bucket"):
        assert metric in text
    promtool = shutil.which("promtool")
    if promtool:
        out = subprocess.run([promtool, "check", "rules", str(COMPOSE / "alert-rules.yml")],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
