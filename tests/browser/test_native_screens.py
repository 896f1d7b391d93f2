"""The native lab's screens in a real browser (Debian's chromium, driven by Playwright), as a learner uses them.

The lab as `make api` and `make locust` run it, and Debian's Prometheus with the lab's rules: the API with one
gunicorn worker pinned to one core (a CPU limit of 1), a Locust master with 2 workers. The tests run in order on
one lab: the start form, a swarm started from it, Prometheus' targets and alerts under that swarm, then Stop.
"""

from __future__ import annotations

import pytest

from lab.browser import LocustScreen, PrometheusScreen, browser, firing_verdict_alert, new_page
from lab.native import native_lab
from lab.polling import wait_for
from tests.support import screens
from tests.support.tools import prometheus

pytestmark = pytest.mark.timeout(240)

LOCUST_WORKERS = 2
WAIT_MAX = 0.1  # short pauses: 10 users keep the one core busy
USERS = 10  # few enough that no request breaks the SLO


@pytest.fixture(scope="module")
def lab(tmp_path_factory, model_dir):
    prometheus()  # skips naming Prometheus where it is missing (fails under LAB_REQUIRE_PROMETHEUS=1)
    screens.require_chromium()
    with native_lab(
        tmp_path_factory.mktemp("lab"),
        model_dir=model_dir,
        locust_workers=LOCUST_WORKERS,
        workers=1,
        cpus=1,
        locust_env={"LOCUST_WAIT_MAX": str(WAIT_MAX)},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def chromium():
    with browser() as opened:
        yield opened


@pytest.fixture(scope="module")
def locust(lab, chromium) -> LocustScreen:
    return LocustScreen(new_page(chromium, lab.locust_url))


@pytest.fixture(scope="module")
def prometheus_screen(lab, chromium) -> PrometheusScreen:
    return PrometheusScreen(new_page(chromium, lab.prometheus_url), lab.prometheus_url)


def test_locusts_start_form_shows_the_labs_fields_with_their_defaults(locust):
    screens.check_the_start_form_shows_the_labs_fields_with_their_defaults(locust, {"wait_max": WAIT_MAX})


def test_a_swarm_started_from_the_form_fills_the_statistics_without_failures_and_draws_the_charts(lab, locust):
    rows = locust.swarm(USERS, LOCUST_WORKERS)
    screens.check_the_statistics(rows)
    assert locust.header()["Workers"] == str(LOCUST_WORKERS)
    assert locust.header()["Status"] == "RUNNING"
    assert locust.charts_drawn() >= 3  # requests per second, response times, users


def test_prometheus_shows_every_target_up(prometheus_screen):
    # A pool scraped only once it is up: right after the start a target is still "unknown".
    every_target_up = {"locust": (1, 1), "model-api": (1, 1), "prometheus": (1, 1)}
    wait_for(lambda: prometheus_screen.targets() == every_target_up, 60, f"the targets page to show {every_target_up}")


def test_prometheus_shows_the_firing_verdicts_alert_with_its_summary_under_the_swarm(lab, prometheus_screen):
    alertname = firing_verdict_alert(lab)
    screens.check_the_alert_page_shows_its_summary(prometheus_screen, lab, alertname)


def test_stop_in_locusts_ui_stops_the_swarm(lab, locust):
    locust.stop()
    wait_for(lambda: lab.locust_state() == "stopped", 30, "Locust to report the swarm stopped")
    wait_for(lambda: locust.header()["Status"] == "STOPPED", 30, "the header to say STOPPED")
