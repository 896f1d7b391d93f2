"""The files that cannot import the vocabulary (Prometheus's YAML) say what model_api.vocabulary says."""

from __future__ import annotations

import re

import yaml

from lab.paths import REPO
from model_api.routes import router
from model_api.vocabulary import MODEL_ROUTES, OOM_MEMORY_SECONDS, RULE_WINDOW_SECONDS, STEP_SECONDS, VERDICTS

RULES = REPO / "prometheus" / "rules"


def test_the_diagnosis_ranks_and_alerts_on_exactly_the_vocabulary_s_verdicts():
    text = (RULES / "diagnosis.yml").read_text()
    ranked = re.findall(r'"verdict", "([a-z-]+)"', text)
    alerted = re.findall(r'job:lab_diagnosis:verdict\{verdict="([a-z-]+)"\} == 1', text)
    assert sorted(ranked) == sorted(VERDICTS)
    assert sorted(alerted) == sorted(VERDICTS)


def test_prometheus_scrapes_and_evaluates_once_a_step():
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["global"]
    assert config["scrape_interval"] == config["evaluation_interval"] == f"{STEP_SECONDS}s"


def test_the_recording_rules_rates_look_back_one_rule_window():
    text = (RULES / "recording.yml").read_text()
    windows = set(re.findall(r"rate\([^\[]*\[(\d+)s\]\)", text))
    assert windows == {str(RULE_WINDOW_SECONDS)}


def test_an_oom_kill_counts_for_as_long_as_the_vocabulary_says():
    text = (RULES / "recording.yml").read_text()
    windows = set(re.findall(r"increase\(lab_(?:container_oom_kills|worker_restarts)_total\[(\d+)m\]\)", text))
    assert windows == {str(OOM_MEMORY_SECONDS // 60)}


def test_the_model_routes_are_the_api_s_routes_tagged_models():
    tagged = {route.path for route in router.routes if "models" in getattr(route, "tags", [])}
    assert tagged == set(MODEL_ROUTES)
