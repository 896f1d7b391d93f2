"""Prometheus: the configs and rules pass promtool, and against a live lab every recording rule has data."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from prometheus.native import COMPOSE_CONFIG, native_config
from tests.support.locust import distributed_locust
from tests.support.processes import running_api
from tests.support.prometheus import RULES_DIR, promtool, running_prometheus
from tests.support.waiting import wait_for

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RECORDS = [rule["record"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
           for rule in group["rules"] if "record" in rule]  # fmt: skip


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_compose_config_passes_promtool():
    done = run_promtool("check", "config", str(COMPOSE_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_generated_native_config_passes_promtool_and_keeps_every_job(tmp_path):
    config = native_config(["127.0.0.1:8000", "127.0.0.1:8001"], "127.0.0.1:9646", "127.0.0.1:9090")
    path = tmp_path / "native.yml"
    path.write_text(yaml.safe_dump(config))

    done = run_promtool("check", "config", str(path))

    assert done.returncode == 0, done.stdout + done.stderr
    compose = yaml.safe_load(COMPOSE_CONFIG.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == [
        job["job_name"] for job in compose["scrape_configs"]
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


@pytest.fixture(scope="module")
def live_lab(tmp_path_factory, model_dir):
    """The API (2 workers), Locust (master + 1 worker, 10 users) and Prometheus scraping both, natively."""
    workdir = tmp_path_factory.mktemp("lab")
    args = ["--autostart", "-u", "10", "-r", "10", "-t", "120s"]
    with (
        running_api(workdir / "api", model_dir, workers=2) as api,
        distributed_locust(workdir / "locust", api.url, workers=1, master_args=args, LOCUST_WAIT_MAX="0.3") as load,
        running_prometheus(workdir, [api.url.removeprefix("http://")], load.exporter_url.split("/")[2]) as prom,
    ):
        yield prom


def test_prometheus_scrapes_the_api_locust_and_itself(live_lab):
    up = wait_for(lambda: (t := live_lab.targets_up()) and len(t) == 3 and t, 60, "three targets scraped")
    assert up == {"model-api": 1.0, "locust": 1.0, "prometheus": 1.0}


@pytest.mark.parametrize("record", RECORDS)
def test_every_recording_rule_returns_data_under_load(live_lab, record):
    series = wait_for(lambda: live_lab.query(record), 90, f"{record} to return a series", interval=1)
    assert series


def test_the_diagnosis_gives_exactly_one_verdict_under_load(live_lab):
    verdicts = wait_for(lambda: live_lab.query("job:lab_diagnosis:verdict"), 90, "a verdict", interval=1)
    assert len(verdicts) == 1
    assert verdicts[0]["metric"]["verdict"] in {
        "healthy", "cpu-bound", "io-bound", "event-loop-blocked", "queueing", "load-generator-saturated",
        "slo-breached",
    }  # fmt: skip
