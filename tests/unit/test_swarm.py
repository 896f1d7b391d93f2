"""swarm.yaml and lab/swarm.py's rewriting, read as files and data: what the stack promises without an engine.
The compose tier deploys it (tests/compose/test_swarm.py)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from lab.paths import REPO
from lab.swarm import prometheus_config, stack_format

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (`!reset`, `!override`) read as their plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node) or None
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


ComposeLoader.add_multi_constructor("!", _tagged)
SWARM_TEXT = (REPO / "swarm.yaml").read_text()
SWARM = yaml.load(SWARM_TEXT, Loader=ComposeLoader)
# A port compose.yaml publishes on a fixed host port: 127.0.0.1:${LOCUST_PORT:-8089}:8089.
HOST_PORT = re.compile(r"^127\.0\.0\.1:(\$\{[A-Z_]+:-\d+\}):(\d+)$")


def effective_volumes(name: str) -> list[Any]:
    """A service's volumes once swarm.yaml is merged: compose.yaml's unless reset, plus swarm.yaml's."""
    ours = SWARM["services"][name].get("volumes")
    reset = re.search(rf"^  {re.escape(name)}:\n(?:    .*\n|\n)*?    volumes: !reset", SWARM_TEXT, re.M)
    return (ours or []) if reset else COMPOSE["services"][name].get("volumes", []) + (ours or [])


def test_every_service_is_found_by_dns_round_robin_so_no_routing_mesh_is_needed():
    assert set(SWARM["services"]) == set(COMPOSE["services"])
    for name, service in SWARM["services"].items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name


def test_every_service_that_mounts_a_file_of_the_checkout_runs_on_the_manager_and_the_others_anywhere():
    for name, service in SWARM["services"].items():
        binds = [v for v in effective_volumes(name) if isinstance(v, str) and v.startswith(("./", "${"))]
        pinned = "node.role == manager" in service["deploy"].get("placement", {}).get("constraints", [])
        assert pinned == bool(binds), f"{name}: bind mounts {binds}, pinned to the manager: {pinned}"
    assert not effective_volumes("locust-worker"), "workers run on any node: no mount of this checkout"


def test_the_ports_a_learner_opens_are_published_in_host_mode_on_the_same_variables_and_replicas_have_none():
    for name, service in COMPOSE["services"].items():
        fixed = [m.groups() for port in service.get("ports", []) if (m := HOST_PORT.match(port))]
        swarm_ports = SWARM["services"][name].get("ports") or []
        assert len(swarm_ports) == len(fixed), name
        for (published, target), swarm_port in zip(fixed, swarm_ports, strict=True):
            assert swarm_port == {"target": int(target), "published": published, "mode": "host"}, name
    assert SWARM["services"]["api"]["ports"] == []


def test_the_api_keeps_its_limits_and_its_replicas_are_a_knob():
    limits = SWARM["services"]["api"]["deploy"]["resources"]["limits"]
    assert limits == {"cpus": "${API_CPUS:-1}", "memory": "${API_MEMORY:-1g}"}
    assert COMPOSE["services"]["api"]["cpus"] == "${API_CPUS:-1}"
    assert COMPOSE["services"]["api"]["mem_limit"] == "${API_MEMORY:-1g}"
    assert SWARM["services"]["api"]["deploy"]["replicas"] == "${API_REPLICAS:-1}"
    assert SWARM["services"]["balancer"]["environment"] == {"API_DNS_NAME": "tasks.api"}


def test_prometheus_finds_every_task_by_swarms_name_for_them_and_keeps_the_rest():
    config = prometheus_config()
    compose = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    [api] = [job for job in config["scrape_configs"] if job["job_name"] == "model-api"]
    assert api["dns_sd_configs"][0]["names"] == ["tasks.api"]
    assert [job["job_name"] for job in config["scrape_configs"]] == [
        job["job_name"] for job in compose["scrape_configs"]
    ]
    assert config["rule_files"] == compose["rule_files"]


def merged(**grafana: Any) -> dict[str, Any]:
    """A small `docker compose config --format json` answer, as Compose writes it."""
    return {
        "name": "model-serving-lab",
        "networks": {"default": {"name": "model-serving-lab_default", "ipam": {}}},
        "services": {
            "prometheus": {
                "command": None, "entrypoint": None, "networks": {"default": None}, "image": "prom/prometheus",
                "ports": [{"mode": "host", "target": 9090, "published": "19090", "protocol": "tcp"}],
                "volumes": [{"type": "bind", "source": "/repo/prometheus", "target": "/etc/prometheus",
                             "read_only": True, "bind": {"create_host_path": True}}],
                "deploy": {"resources": {"limits": {"cpus": 1.5}}},
            },
            "grafana": {"image": "grafana/grafana", **grafana},
        },
        "volumes": {"prometheus-data": {"name": "model-serving-lab_prometheus-data"},
                    "grafana-data": {"name": "model-serving-lab_grafana-data"}},
        "x-locust-environment": {"LOCUST_USERS": "20"},
    }  # fmt: skip


def test_the_stack_file_drops_what_docker_stack_deploy_refuses_and_keeps_the_rest():
    stack = stack_format(merged(), grafana=True)
    assert set(stack) == {"services", "volumes"}
    prometheus = stack["services"]["prometheus"]
    assert prometheus == {
        "image": "prom/prometheus",
        "ports": [{"mode": "host", "target": 9090, "published": 19090, "protocol": "tcp"}],
        "volumes": [{"type": "bind", "source": "/repo/prometheus", "target": "/etc/prometheus", "read_only": True}],
        "deploy": {"resources": {"limits": {"cpus": "1.5"}}},
    }
    assert stack["volumes"] == {"prometheus-data": {}, "grafana-data": {}}
    assert "grafana" in stack["services"]


def test_the_stack_file_leaves_grafana_and_its_volume_out_when_asked():
    stack = stack_format(merged(), grafana=False)
    assert list(stack["services"]) == ["prometheus"]
    assert list(stack["volumes"]) == ["prometheus-data"]
