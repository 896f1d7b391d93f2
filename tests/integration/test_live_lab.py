"""A live lab, natively: every rule and every dashboard query returns data, as if a learner opened Grafana.
(The balancer's rules and panels are checked in the compose tier: only the compose lab has a balancer.)

Real processes on 127.0.0.1: the API (2 gunicorn workers, sync handlers with a 5 ms downstream wait,
micro-batching and the local answer cache, so that every stage, the batch size and the cache are recorded), a
Locust master with 2 workers ramping to 10 users, and Debian's Prometheus scraping both with the lab's rules.
The swarm is started as a learner starts it, from Locust's form in a real browser (Debian's chromium), the first
test checking Locust's and Prometheus' screens on the way; the last test presses Stop.
Grafana cannot run here, so each panel's query is sent to Prometheus the way Grafana would send it: template
variables set to All, intervals filled in.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from grafana.dashboard import DASHBOARD_FILE
from lab.browser import LocustScreen, new_page
from lab.grafana import annotation_queries, panel_queries, panels, substitute
from lab.grafana import template_values as dashboard_template_values
from lab.native import native_lab
from lab.polling import wait_for
from lab.prometheus import compose_only, recorded_series, rules
from model_api.vocabulary import MODEL_ROUTES_REGEX, VERDICTS
from tests.support import screens
from tests.support.tools import prometheus

# The module's lab starts in its first test, and a rule may take 90 s of load to return data.
pytestmark = pytest.mark.timeout(300)

DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
INSTANT = {(f"{p['title']} [{t['refId']}]") for p in panels(DASHBOARD) for t in p["targets"] if t["instant"]}
NATIVE_QUERIES = [(name, expr) for name, expr in panel_queries(DASHBOARD) if not compose_only(expr)]


USERS, SPAWN_RATE = 10, 1  # a ramp of 10 s, which the users annotation must mark
WAIT_MAX = 0.3
LOCUST_WORKERS = 2


@pytest.fixture(scope="module")
def native(tmp_path_factory, model_dir):
    """The API, Locust (master + 2 workers, as `make locust` starts them) and Prometheus scraping both."""
    prometheus()  # skips naming Prometheus where it is missing (fails under LAB_REQUIRE_PROMETHEUS=1)
    with native_lab(
        tmp_path_factory.mktemp("lab"),
        model_dir=model_dir,
        workers=2,
        cpus=2,
        locust_workers=LOCUST_WORKERS,
        # The local answer cache on, so that its series (and the Answer cache row) exist: Locust's default
        # stream never repeats a request, so every lookup misses and the model answers all of them.
        api_env={"LAB_DOWNSTREAM_LATENCY_MS": "5", "LAB_BATCHING": "true", "LAB_CACHE": "local"},
        locust_env={"LOCUST_WAIT_MAX": str(WAIT_MAX)},
    ) as lab:
        yield lab


@pytest.fixture(scope="module")
def locust(native, chromium) -> LocustScreen:
    return LocustScreen(new_page(chromium, native.locust_url))


@pytest.mark.browser
def test_a_swarm_started_from_locusts_form_fills_its_screens_and_prometheus_shows_the_targets_and_the_alert(
    native, locust, chromium
):
    """The first test: a learner's swarm, in Debian's chromium. Locust's form shows the lab's fields with their
    defaults; users and spawn rate filled, Start: the statistics fill without errors (a response slower than the
    SLO, on a busy machine, is the only failure allowed), the charts draw, the header counts both workers.
    Prometheus' pages show every target up and the verdict's alert with its summary. The swarm goes on for the
    tests that follow; the last one presses Stop."""
    screens.check_a_swarm_from_the_form(
        locust, native, chromium, {"locust": (1, 1), "model-api": (1, 1), "prometheus": (1, 1)},
        LOCUST_WORKERS, USERS, SPAWN_RATE, form_overrides={"wait_max": WAIT_MAX},
    )  # fmt: skip


@pytest.fixture(scope="module")
def live_lab(native):
    """The lab under the swarm: the one the browser test started from Locust's form or, where it did not run,
    the same swarm started through Locust's web API."""
    if native.locust_state() not in {"spawning", "running"}:
        native.start_swarm(user_count=USERS, spawn_rate=SPAWN_RATE)
    return native.prometheus


@pytest.fixture(scope="module")
def template_values(live_lab) -> dict[str, str]:
    """Each dashboard variable set to All, as Grafana substitutes it, from the values Prometheus offers."""

    def offered(label: str, selector: str) -> list[str]:
        return wait_for(lambda: live_lab.label_values(label, selector), 60, f"values of {label}", interval=1)

    return dashboard_template_values(DASHBOARD, offered)


def test_prometheus_scrapes_the_api_locust_and_itself(live_lab):
    up = wait_for(lambda: (t := live_lab.targets_up()) and len(t) == 3 and t, 60, "three targets scraped")
    assert up == {"model-api": 1.0, "locust": 1.0, "prometheus": 1.0}


@pytest.mark.parametrize("record", [r for r in recorded_series() if not compose_only(r)])
def test_every_recording_rule_returns_data_under_load(live_lab, record):
    series = wait_for(lambda: live_lab.query(record), 90, f"{record} to return a series", interval=1)
    assert series


def test_the_diagnosis_gives_exactly_one_verdict_under_load(live_lab):
    verdicts = wait_for(lambda: live_lab.query("job:lab_diagnosis:verdict"), 90, "a verdict", interval=1)
    assert len(verdicts) == 1
    assert verdicts[0]["metric"]["verdict"] in VERDICTS


def test_exactly_one_diagnosis_alert_fires_and_it_carries_its_advice(live_lab):
    firing = wait_for(
        lambda: live_lab.query('ALERTS{alertstate="firing", alertname=~"Lab.*"}'), 90, "a firing alert", interval=1
    )
    assert len(firing) == 1
    alert = firing[0]["metric"]
    assert alert["alertname"] in {rule["alert"] for rule in rules("alert")}
    assert alert["verdict"] in VERDICTS
    assert alert["advice"]


def test_the_dashboard_variables_offer_the_routes_and_endpoints(live_lab, template_values):
    assert template_values["route"] == f"({MODEL_ROUTES_REGEX})"
    assert set(template_values["endpoint"].strip("()").split("|")) >= {"/classify", "/predict"}


@pytest.mark.parametrize(("panel", "expr"), NATIVE_QUERIES, ids=[n for n, _ in NATIVE_QUERIES])
def test_every_dashboard_panel_query_returns_data_under_load(live_lab, template_values, panel, expr):
    query = substitute(expr, template_values)
    run = live_lab.query if panel in INSTANT else live_lab.query_range
    series = wait_for(lambda: run(query), 90, f"{panel} to return data:\n{query}", interval=1)
    assert series


def test_the_users_annotation_marks_the_ramp(live_lab, template_values):
    """Users go 0 -> 10 at one a second: the annotation must mark at least one step of that ramp."""
    expr = substitute(dict(annotation_queries(DASHBOARD))["Users changed"], template_values)

    def marks() -> list[float]:  # the query is 0 where nothing changed; Grafana marks the samples above 0
        return [float(v) for series in live_lab.query_range(expr, 300) for _, v in series["values"] if float(v) > 0]

    assert wait_for(marks, 60, "a users mark")


@pytest.mark.parametrize("name", ["Locust workers changed", "API workers changed"])
def test_the_other_annotations_evaluate(live_lab, template_values, name):
    """Nothing changes the worker counts during this run, so these are only checked to evaluate (no error);
    their logic is the users annotation's, which is checked to mark a change."""
    expr = dict(annotation_queries(DASHBOARD))[name]
    live_lab.query_range(substitute(expr, template_values), 120)


def test_make_diagnose_prints_the_verdict_its_advice_and_the_evidence_from_the_live_prometheus(live_lab):
    wait_for(lambda: live_lab.query("job:lab_diagnosis:verdict"), 90, "a verdict", interval=1)

    done = subprocess.run(
        [sys.executable, "-m", "experiments.diagnose", "--prometheus", live_lab.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    verdict = re.search(r"^Verdict: (\S+)$", done.stdout, re.MULTILINE)
    assert verdict, done.stdout
    assert verdict[1] in VERDICTS, done.stdout
    assert re.search(r"^What to change: \S", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^CPU / limit \(busiest replica\) +\d+%   > 75%", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^queueing gap: client P99 - server P99 +-?\d+ ms", done.stdout, re.MULTILINE), done.stdout
    p999 = r"^P99\.9, the worse of client and server +(\d+ ms|too few requests)\b"
    assert re.search(p999, done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^requests behind it \(P99\.9 needs 1000\) +\d+ ", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.browser
def test_stop_in_locusts_ui_stops_the_swarm(native, locust):
    """Last in this module: it ends the swarm."""
    locust.stop()
    screens.check_the_swarm_stopped(locust, native)
