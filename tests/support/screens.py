"""What the browser tier checks on each screen, the same against the native and the compose lab."""

from __future__ import annotations

from playwright.sync_api import Browser

from lab.browser import LocustScreen, PrometheusScreen, camel, chromium, firing_verdict_alert, new_page
from lab.errors import LabError, MissingTool, WaitTimeout
from lab.polling import wait_for
from lab.stack import Lab
from lab_locust.options import OPTIONS
from model_api.vocabulary import SLOWER_THAN_SLO
from tests.support.tools import skip_or_fail


def require_chromium() -> str:
    """Debian's chromium; else skip (naming the package), or fail when LAB_REQUIRE_BROWSER=1 (as in CI)."""
    try:
        return chromium()
    except MissingTool as missing:
        skip_or_fail(missing, "LAB_REQUIRE_BROWSER")


def check_the_start_form_shows_the_labs_fields_with_their_defaults(
    locust: LocustScreen, overrides: dict[str, float] | None = None
) -> None:
    """Each of the lab's options is a field holding its default, or the value the lab's environment set."""
    values = locust.form_values()
    for name, option in OPTIONS.items():
        expected = (overrides or {}).get(name, option.default)
        if not option.extra.get("include_in_web_ui", True):
            assert camel(name) not in values
        elif isinstance(expected, str):
            assert values[camel(name)] == expected, name
        else:
            assert float(values[camel(name)]) == float(expected), (name, values[camel(name)])


def check_the_statistics(locust: LocustScreen, rows: list[dict[str, str]]) -> None:
    """The statistics name /classify and the Aggregated row, and no request failed but by being slower than the
    SLO: the lab answers every request, though a shared machine's pause may hold one past 1 s (a browser, Locust,
    Prometheus and the API on 2 cores). Such failures, if any, must be in the Failures tab with that message."""
    names = {row["Name"] for row in rows}
    assert {"/classify", "Aggregated"} <= names, names
    if all(row["# Fails"] == "0" for row in rows):
        return
    failures = wait_for(lambda: locust.failures() or None, 30, "the Failures tab to list the failures", interval=1)
    errors = [row for row in failures if SLOWER_THAN_SLO not in row.get("Message", "")]
    assert not errors, (errors, rows)


def check_a_swarm_from_the_form(
    locust: LocustScreen,
    lab: Lab,
    browser: Browser,
    every_target_up: dict[str, tuple[int, int]],
    workers: int,
    users: int,
    spawn_rate: float,
    form_overrides: dict[str, float] | None = None,
) -> None:
    """A learner's swarm: Locust's form shows the lab's fields with their defaults; users and spawn rate filled,
    Start: the statistics fill without errors (a failure only by a response slower than the SLO), the charts
    draw, the header counts the `workers`. Prometheus' targets page shows `every_target_up`, and its alerts page
    the verdict's alert with its summary. The swarm goes on."""
    check_the_start_form_shows_the_labs_fields_with_their_defaults(locust, form_overrides)
    check_the_statistics(locust, locust.swarm(users, workers, spawn_rate=spawn_rate))
    assert locust.header()["Workers"] == str(workers)
    assert locust.charts_drawn() >= 3  # requests per second, response times, users

    page = PrometheusScreen(new_page(browser, lab.prometheus_url), lab.prometheus_url)
    wait_for(lambda: page.targets() == every_target_up, 60, f"the targets page to show {every_target_up}")
    check_the_alert_page_shows_its_summary(page, lab, firing_verdict_alert(lab))


def check_the_swarm_stopped(locust: LocustScreen, lab: Lab) -> None:
    """After Stop: Locust's API says so, then its header (reloaded if it stuck at STOPPING, as a learner would)."""
    wait_for(lambda: lab.locust_state() == "stopped", 30, "Locust to report the swarm stopped")
    seen: list[str] = []

    def header_stopped() -> bool:
        seen.append(locust.status_once_stopped())
        return seen[-1] == "STOPPED"

    try:
        wait_for(header_stopped, 30, "the header to say STOPPED")
    except WaitTimeout as timeout:
        raise AssertionError(f"the header still says {seen[-1:]} after Stop") from timeout


def check_the_alert_page_shows_its_summary(prometheus: PrometheusScreen, lab: Lab, alertname: str) -> None:
    """The alert is shown firing, with its summary rendered (templates filled in, not the rule's source)."""
    rule = next(rule for group in lab.prometheus.rule_groups() for rule in group["rules"] if rule["name"] == alertname)
    opening = rule["annotations"]["summary"].split("{{")[0].strip()  # the words before the first template
    text = prometheus.alert_text(alertname)
    assert alertname in text
    assert "firing" in text.lower()
    rendered = [line for line in text.splitlines() if opening in line and "{{" not in line]
    assert rendered, f"no rendered summary with {opening!r} on the alerts page:\n{text[:3000]}"


def require_grafana_image(lab: Lab, image: str) -> str:
    """The lab's Grafana address; else skip naming the image, or fail when LAB_REQUIRE_GRAFANA=1."""
    if not lab.grafana_url:
        missing = LabError(
            f"the Grafana image {image} is not on this Docker engine, so the compose lab runs without Grafana"
        )
        skip_or_fail(missing, "LAB_REQUIRE_GRAFANA")
    return lab.grafana_url
