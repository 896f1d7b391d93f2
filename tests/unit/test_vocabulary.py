"""The files that cannot import the vocabulary (Prometheus's YAML) say what model_api.vocabulary says."""

from __future__ import annotations

import itertools
import re

import yaml

from lab.paths import REPO
from model_api.buckets import LATENCY_BUCKETS
from model_api.routes import models_router, router
from model_api.vocabulary import (
    MODEL_ROUTES,
    OOM_MEMORY_SECONDS,
    P999_MIN_SAMPLES,
    RULE_WINDOW_SECONDS,
    SLO_MS,
    STEP_SECONDS,
    VERDICTS,
)

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
    windows = set(re.findall(r"(?:rate|increase)\([^\[]*\[(\d+)s\]\)", text))
    assert windows == {str(RULE_WINDOW_SECONDS)}


def test_an_oom_kill_counts_for_as_long_as_the_vocabulary_says():
    text = (RULES / "recording.yml").read_text()
    windows = set(re.findall(r"increase\(lab_(?:container_oom_kills|worker_restarts)_total\[(\d+)m\]\)", text))
    assert windows == {str(OOM_MEMORY_SECONDS // 60)}


def test_the_model_routes_are_the_api_s_routes_tagged_models():
    routes = [*models_router.routes, *router.routes]
    tagged = {route.path for route in routes if "models" in getattr(route, "tags", [])}
    assert tagged == set(MODEL_ROUTES)
    assert {route.path for route in models_router.routes} == set(MODEL_ROUTES)  # each parses its body in one step


def test_a_p999_is_a_number_only_from_as_many_requests_as_the_vocabulary_says():
    rules = {
        rule["record"]: rule["expr"]
        for group in yaml.safe_load((RULES / "recording.yml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    gated = {
        name: expr for name, expr in rules.items() if name.endswith(":p999_rate30s") and "histogram_quantile" in expr
    }
    assert set(gated) == {
        "route:lab_http_request_duration_seconds:p999_rate30s",
        "endpoint:locust_response_time_seconds:p999_rate30s",
    }
    for name, expr in gated.items():
        assert re.findall(r":count30s >= (\d+)", expr) == [str(P999_MIN_SAMPLES)], name


def test_latency_buckets_are_fine_everywhere_and_finest_around_the_slos():
    """No bucket over 1.5x the one below; from 0.1 s to 2 s (the default SLO and the guides' 250-500 ms), none
    over 1.25x, so that a P99 and a P99.9 near an SLO fall in different buckets."""
    ratios = {upper: upper / lower for lower, upper in itertools.pairwise(LATENCY_BUCKETS)}
    assert max(ratios.values()) <= 1.5
    assert all(ratio <= 1.25 for upper, ratio in ratios.items() if 0.1 < upper <= 2.0)
    assert SLO_MS / 1000 in LATENCY_BUCKETS
    assert len(LATENCY_BUCKETS) <= 40  # each bucket is a series per route, on every scrape
