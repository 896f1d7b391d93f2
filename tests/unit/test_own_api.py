"""own-api.yaml, prometheus/own-api.yml and the exporters' files, read as files and data: what the lab pointed at
another service promises without starting it (tests/integration/test_own_api.py and tests/compose/test_own_api.py
start it)."""

from __future__ import annotations

import pytest
import yaml

from lab.errors import LabError
from lab.exporters import OWN_API_FILE, cpu_limit_textfile, default_target_process, process_exporter_config
from lab.paths import REPO
from prometheus.native import COMPOSE_CONFIG, OWN_API_CONFIG, own_api_config

OWN_API = yaml.safe_load(OWN_API_FILE.read_text().replace("!reset", ""))["services"]


def jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_own_api_yml_scrapes_locust_and_itself_evaluates_the_rules_and_keeps_the_interval_as_prometheus_yml_does():
    lab, own = yaml.safe_load(COMPOSE_CONFIG.read_text()), yaml.safe_load(OWN_API_CONFIG.read_text())
    assert own["global"] == lab["global"]
    assert own["rule_files"] == lab["rule_files"]
    for name in ("locust", "prometheus"):
        assert jobs(own)[name] == jobs(lab)[name]
    assert set(jobs(own)) == {"target", "node", "process", "locust", "prometheus"}


def test_the_native_own_api_config_scrapes_the_targets_scheme_address_and_metrics_path():
    config = own_api_config(
        "https://127.0.0.1:3000/ignored", "127.0.0.1:9646", "127.0.0.1:9090", "127.0.0.1:9100", "127.0.0.1:9256",
        metrics_path="/prometheus",
    )  # fmt: skip

    target = jobs(config)["target"]
    assert target["static_configs"] == [{"targets": ["127.0.0.1:3000"]}]
    assert (target["scheme"], target["metrics_path"]) == ("https", "/prometheus")
    assert "file_sd_configs" not in target
    assert jobs(config)["node"]["static_configs"] == [{"targets": ["127.0.0.1:9100"]}]
    assert jobs(config)["process"]["static_configs"] == [{"targets": ["127.0.0.1:9256"]}]
    assert all(path.startswith("/") for path in config["rule_files"])


def test_the_process_exporters_groups_are_one_per_process_whose_command_line_matches_the_pattern():
    config = yaml.safe_load(process_exporter_config("bentoml|it's"))

    (group,) = config["process_names"]
    assert group["name"] == "target:{{.PID}}"  # servers.yml reads each process as the lab reads a worker
    assert group["cmdline"] == ["bentoml|it's"]


def test_a_pattern_that_is_not_a_regular_expression_is_refused_naming_the_knob():
    with pytest.raises(LabError, match="LAB_TARGET_PROCESS"):
        process_exporter_config("bentoml(")


def test_the_native_default_pattern_is_own_api_yamls():
    assert default_target_process() == "bentoml|uvicorn|gunicorn"
    assert OWN_API["process-exporter"]["environment"]["LAB_TARGET_PROCESS"] == (
        "${LAB_TARGET_PROCESS:-bentoml|uvicorn|gunicorn}"
    )


def test_own_api_yaml_starts_neither_the_labs_api_nor_its_balancer_and_points_locust_and_prometheus_at_the_target():
    assert OWN_API["api"]["profiles"] == OWN_API["balancer"]["profiles"] == ["lab-api"]
    target = OWN_API["locust-master"]["environment"]["LOCUST_HOST"]
    assert target == "${LAB_TARGET:-http://host.docker.internal:3000}"
    assert OWN_API["prometheus"]["environment"]["LAB_TARGET"] == target
    assert OWN_API["prometheus"]["entrypoint"] == ["/bin/sh", "/etc/prometheus/own-api.sh"]
    assert (REPO / "prometheus" / "own-api.sh").is_file()
    for service in ("locust-master", "locust-worker", "prometheus"):
        assert OWN_API[service]["extra_hosts"] == ["host.docker.internal:host-gateway"], service
    assert OWN_API["process-exporter"]["pid"] == "host", "the exporter must see the host's processes"


def test_lab_target_cpus_becomes_the_node_exporters_gauge_of_the_services_cpu_limit():
    text = cpu_limit_textfile(1.5)

    assert text.splitlines()[-1] == "lab_target_cpu_limit_cores 1.5"
    assert "# TYPE lab_target_cpu_limit_cores gauge" in text
    script = (REPO / "exporters" / "start-node-exporter.sh").read_text()
    assert "lab_target_cpu_limit_cores %s" in script, "the container writes the same gauge"
    assert OWN_API["node-exporter"]["environment"]["LAB_TARGET_CPUS"] == "${LAB_TARGET_CPUS:-}"
    with pytest.raises(LabError, match="LAB_TARGET_CPUS"):
        cpu_limit_textfile(0)


@pytest.mark.parametrize("target", ["127.0.0.1:3000", "ftp://127.0.0.1:3000", "http://"])
def test_a_target_that_is_not_an_http_url_is_refused_naming_the_knob(target):
    with pytest.raises(ValueError, match="LAB_TARGET"):
        own_api_config(target, "127.0.0.1:9646", "127.0.0.1:9090", "127.0.0.1:9100", "127.0.0.1:9256")
