"""compose.yaml, .env and the scenario overrides, read as files: the promises that need no engine to check."""

from __future__ import annotations

import re

import pytest
import yaml

from lab.paths import API_DIR, REPO
from model_api.settings import Settings, env_name

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
DESIGN_SCENARIOS = {
    "baseline", "cpu-bound", "io-bound", "async-io", "blocking-async", "more-workers", "batching", "onnx", "cold-start",
    "memory-bound", "caching",
}  # fmt: skip
# What a scenario may add beyond the API's knobs: caching brings its Redis (which the API waits for) and a catalog
# for the Locust users to draw from, so that requests repeat.
ADDED_SERVICES = {"caching": {"redis", "locust-master", "locust-worker"}}
API_KEYS = {"caching": {"depends_on"}, "memory-bound": {"mem_limit", "memswap_limit"}}


def dotenv() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env").read_text().splitlines() if re.match(r"^[A-Z_]+=", line))
    return dict(pairs)


def seconds(duration: str) -> float:
    return float(duration.removesuffix("s"))


def test_there_is_one_override_per_scenario_of_the_design():
    assert {path.stem for path in SCENARIOS} == DESIGN_SCENARIOS


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_each_scenario_starts_with_what_it_teaches_and_its_command(path):
    head = path.read_text().split("\nservices:")[0]
    assert head.startswith(f"# {path.stem}: ")
    assert "Teaches: " in head
    assert f"docker compose -f compose.yaml -f scenarios/{path.name} up" in head


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_each_scenario_changes_only_the_api_and_only_knobs_the_api_reads(path):
    override = yaml.safe_load(path.read_text())
    assert list(override) == ["services"]
    assert set(override["services"]) == {"api"} | ADDED_SERVICES.get(path.stem, set())
    api = override["services"]["api"]
    assert set(api) <= {"environment", "cpus"} | API_KEYS.get(path.stem, set())
    knobs = set(COMPOSE["services"]["api"]["environment"]) | {env_name(name) for name in Settings.model_fields}
    assert set(api.get("environment", {})) <= knobs


def test_the_caching_scenario_starts_the_api_once_its_redis_answers_and_sets_a_catalog_for_every_locust():
    override = yaml.safe_load((REPO / "scenarios" / "caching.yaml").read_text())["services"]
    redis_host = override["api"]["environment"]["LAB_REDIS_URL"].split("/")[2].split(":")[0]

    assert redis_host in override
    assert override["api"]["depends_on"] == {redis_host: {"condition": "service_healthy"}}
    assert "healthcheck" in override[redis_host]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+", override[redis_host]["image"])
    for locust in ("locust-master", "locust-worker"):
        assert int(override[locust]["environment"]["LOCUST_CATALOG_SIZE"]) > 0, locust


def test_every_host_port_binds_to_127_0_0_1():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_only_the_locust_master_ui_is_published_not_its_exporter_and_workers_publish_nothing():
    assert COMPOSE["services"]["locust-master"]["ports"] == ["127.0.0.1:${LOCUST_PORT:-8089}:8089"]
    assert "ports" not in COMPOSE["services"]["locust-worker"]
    assert "container_name" not in str(COMPOSE), "a fixed container name blocks --scale"


def test_images_are_pinned_to_exact_versions():
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1]
        assert tag == "local" or re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image}"
    for dockerfile in [API_DIR / "Dockerfile", REPO / "locust" / "Dockerfile"]:
        for base in re.findall(r"^FROM (\S+)", dockerfile.read_text(), re.M):
            assert re.search(r":\d+\.\d+\.\d+", base), f"{dockerfile.parent.name}: {base}"


def test_the_api_stops_gracefully_longer_than_gunicorn_waits_for_requests():
    graceful = re.search(r"^graceful_timeout = (\d+)", (API_DIR / "gunicorn.conf.py").read_text(), re.M)
    assert seconds(COMPOSE["services"]["api"]["stop_grace_period"]) > int(graceful.group(1))


def test_the_api_metrics_folder_is_a_tmpfs_where_the_image_points_prometheus_client():
    folder = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", (API_DIR / "Dockerfile").read_text()).group(1)
    assert any(mount.split(":")[0] == folder for mount in COMPOSE["services"]["api"]["tmpfs"])


def test_the_env_file_sets_every_variable_compose_yaml_reads_with_the_same_default():
    used = dict(re.findall(r"\$\{([A-Z_]+):-([^}]*)\}", (REPO / "compose.yaml").read_text()))
    env = dotenv()
    assert set(used) == set(env)
    assert {name: env[name] for name in used} == used
    assert env["API_CPUS"] == "1"


def test_data_the_learner_needs_outlives_docker_compose_down():
    assert set(COMPOSE["volumes"]) == {"prometheus-data", "grafana-data"}
    assert "prometheus-data:/prometheus" in COMPOSE["services"]["prometheus"]["volumes"]
    assert "grafana-data:/var/lib/grafana" in COMPOSE["services"]["grafana"]["volumes"]
    assert "${LOCUST_REPORTS:-./reports}:/home/locust/reports" in COMPOSE["services"]["locust-master"]["volumes"]
    assert (REPO / "reports" / ".gitignore").is_file(), "the reports folder exists in a fresh clone"


def test_locust_never_warns_about_open_files():
    for name in ("locust-master", "locust-worker"):
        nofile = COMPOSE["services"][name]["ulimits"]["nofile"]
        assert nofile["soft"] >= 10000, name


def test_the_locust_master_waits_for_the_balancer_to_have_a_ready_api_and_nothing_waits_on_the_api():
    """The master starts once the balancer is healthy, i.e. has a replica whose /readyz passed; since no service
    depends on the API, recreating it with a new knob restarts nothing else (Compose recreates dependents)."""
    assert COMPOSE["services"]["locust-master"]["depends_on"] == {"balancer": {"condition": "service_healthy"}}
    assert "HEALTHCHECK" in (API_DIR / "Dockerfile").read_text()
    assert "/8404" in " ".join(COMPOSE["services"]["balancer"]["healthcheck"]["test"])
    config = (REPO / "balancer" / "haproxy.cfg").read_text()
    assert re.search(r"^\s+bind :8404\n\s+monitor-uri /ready\n\s+monitor fail if \{ nbsrv\(api\) lt 1 \}", config, re.M)
    assert re.search(r"^\s+option httpchk GET /readyz$", config, re.M)
    assert [name for name, service in COMPOSE["services"].items() if "api" in service.get("depends_on", {})] == []


def test_the_balancer_finds_every_replica_by_dns_and_sends_each_request_to_the_least_busy():
    config = (REPO / "balancer" / "haproxy.cfg").read_text()
    assert re.search(r"^\s+balance leastconn$", config, re.M)
    assert re.search(
        r'^\s+server-template api \d+ "\$\{API_DNS_NAME\}:8000" resolvers docker resolve-prefer ipv4 init-addr none$',
        config,
        re.M,
    )
    assert COMPOSE["services"]["balancer"]["environment"]["API_DNS_NAME"] == "api"
    assert re.search(r"^\s+nameserver dns 127\.0\.0\.11:53$", config, re.M)
    assert COMPOSE["services"]["balancer"]["ports"] == ["127.0.0.1:${API_PORT:-8000}:8000"]
    assert COMPOSE["services"]["api"]["ports"] == ["127.0.0.1::8000"], "a replica's own port is Docker's to pick"


def test_the_locust_master_is_interrupted_on_stop_so_it_writes_its_html_report():
    master = COMPOSE["services"]["locust-master"]
    assert master["stop_signal"] == "SIGINT"
    assert "--html /home/locust/reports/" in master["command"]
    assert master["environment"]["LOCUST_HOST"] == "http://balancer:8000", "Locust targets the balancer, not a replica"
    assert master["entrypoint"] == ["lab-locust"], "the launcher that keeps the master up when reports/ is locked"
