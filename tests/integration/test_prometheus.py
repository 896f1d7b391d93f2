"""Prometheus: the configs and rules pass promtool, and the rules' unit tests pass (live checks: test_live_lab.py)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from lab.paths import RULES_DIR
from lab.prometheus import recorded_series, renamed_series
from model_api.metrics import all_family_names
from prometheus.native import COMPOSE_CONFIG, COMPOSE_ONLY_JOBS, OWN_API_CONFIG, native_config, own_api_config
from tests.support.tools import promtool

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RECORDS = recorded_series()


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("config", [COMPOSE_CONFIG, OWN_API_CONFIG], ids=lambda path: path.name)
def test_the_compose_configs_pass_promtool(config):
    done = run_promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_generated_native_own_api_config_passes_promtool(tmp_path):
    config = own_api_config(
        "http://127.0.0.1:3000", "127.0.0.1:9646", "127.0.0.1:9090", "127.0.0.1:9100", "127.0.0.1:9256"
    )
    path = tmp_path / "own-api.yml"
    path.write_text(yaml.safe_dump(config))

    done = run_promtool("check", "config", str(path))

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


def test_every_series_servers_yml_renames_is_one_the_labs_api_exposes_under_that_name():
    """What servers.yml records from another server is named as the lab's API names the same measurement (a
    histogram's _bucket, _sum and _count included), so that the lab's rules read it as their own."""
    families = set(all_family_names())
    renamed = renamed_series()
    assert renamed, "servers.yml renames nothing"
    unknown = [name for name in renamed if re.sub(r"_(bucket|sum|count)$", "", name) not in families]
    assert not unknown, unknown


@pytest.mark.parametrize("tests", sorted((RULES_DIR / "tests").glob("*_test.yml")), ids=lambda path: path.name)
def test_the_rule_unit_tests_pass(tests):
    done = run_promtool("test", "rules", str(tests))
    assert done.returncode == 0, done.stdout + done.stderr


RANGE = re.compile(r"\[(\d+)([sm])\]")
INCREASE = re.compile(r"increase\(([^\[\]()]+)\[(\d+)([sm])\]\)")
SECONDS = {"s": 1, "m": 60}


def left_open(rules: str) -> str:
    """The rules as Prometheus 3 evaluates them, for Prometheus 2: every range window 1 ms shorter, so that a
    sample on its start boundary is left out (Prometheus 3's windows are open at the start; 2.x's are closed) and
    nothing else changes, samples lying on whole milliseconds. rate() extrapolates to the window's start
    either way, so the shorter window changes only the boundary sample; increase() is rate() times the window,
    so it is written as that product, with the window's true length. (Where a series starts inside a window, rate()
    cannot extrapolate to its start and the rewrite is off by window / (window - 1 ms): such an expectation must be
    a comparison, not an exact value.)"""
    rules = INCREASE.sub(lambda m: f"(rate({m[1]}[{m[2]}{m[3]}]) * {int(m[2]) * SECONDS[m[3]]})", rules)
    return RANGE.sub(lambda m: f"[{int(m[1]) * SECONDS[m[2]] * 1000 - 1}ms]", rules)


@pytest.mark.parametrize("tests", sorted((RULES_DIR / "tests").glob("*_test.yml")), ids=lambda path: path.name)
def test_the_rule_unit_tests_pass_with_prometheus_3s_windows_open_at_the_start(tests, tmp_path):
    """Prometheus 3 leaves out the sample on a range window's start boundary, which 2.x (Debian's, here) counts:
    the expectations must not depend on that sample. Each rule file is rewritten by `left_open` and the same
    tests run against it."""
    (tmp_path / "rules" / "tests").mkdir(parents=True)
    for rule_file in RULE_FILES:
        rewritten = left_open(rule_file.read_text())
        assert "increase(" not in rewritten, f"{rule_file.name}: an increase() that left_open cannot rewrite"
        unwritten = [r for r in re.findall(r"\[[^\]]*\]", rewritten) if not re.fullmatch(r"\[\d+ms\]", r)]
        assert not unwritten, f"{rule_file.name}: ranges left_open cannot rewrite: {unwritten}"
        (tmp_path / "rules" / rule_file.name).write_text(rewritten)
    copy = tmp_path / "rules" / "tests" / tests.name
    copy.write_text(tests.read_text())

    done = run_promtool("test", "rules", str(copy))

    assert done.returncode == 0, done.stdout + done.stderr
