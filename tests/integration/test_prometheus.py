"""Prometheus: the configs and rules pass promtool, and the rules' unit tests pass (live checks: test_live_lab.py)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from lab.paths import RULES_DIR
from lab.prometheus import recorded_series
from prometheus.native import COMPOSE_CONFIG, COMPOSE_ONLY_JOBS, native_config
from tests.support.tools import promtool

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RECORDS = recorded_series()


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_compose_config_passes_promtool():
    done = run_promtool("check", "config", str(COMPOSE_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_generated_native_config_passes_promtool_and_keeps_every_job_but_the_balancer(tmp_path):
    config = native_config(["127.0.0.1:8000", "127.0.0.1:8001"], "127.0.0.1:9646", "127.0.0.1:9090")
    path = tmp_path / "native.yml"
    path.write_text(yaml.safe_dump(config))

    done = run_promtool("check", "config", str(path))

    assert done.returncode == 0, done.stdout + done.stderr
    compose = yaml.safe_load(COMPOSE_CONFIG.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == [
        job["job_name"] for job in compose["scrape_configs"] if job["job_name"] not in COMPOSE_ONLY_JOBS
    ]
    assert config["global"] == compose["global"]
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:8000", "127.0.0.1:8001"]}]


def test_the_rules_pass_promtool_and_follow_the_naming_convention():
    done = run_promtool("check", "rules", *map(str, RULE_FILES))

    assert done.returncode == 0, done.stdout + done.stderr
    assert all(record.count(":") == 2 for record in RECORDS), RECORDS


@pytest.mark.parametrize("tests", sorted((RULES_DIR / "tests").glob("*_test.yml")), ids=lambda path: path.name)
def test_the_rule_unit_tests_pass(tests):
    done = run_promtool("test", "rules", str(tests))
    assert done.returncode == 0, done.stdout + done.stderr
