"""What the browser tier checks on each screen, the same against the native and the compose lab."""

from __future__ import annotations

import os

import pytest

from lab.browser import LocustScreen, PrometheusScreen, camel, chromium
from lab.errors import MissingTool
from lab.stack import Lab
from lab_locust.options import OPTIONS
from tests.support.tools import _skip_or_fail


def require_chromium() -> str:
    """Debian's chromium; else skip (naming the package), or fail when LAB_REQUIRE_BROWSER=1 (as in CI)."""
    try:
        return chromium()
    except MissingTool as missing:
        _skip_or_fail(missing, "LAB_REQUIRE_BROWSER")


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


def check_the_statistics(rows: list[dict[str, str]]) -> None:
    names = {row["Name"] for row in rows}
    assert {"/classify", "Aggregated"} <= names, names
    assert all(row["# Fails"] == "0" for row in rows), rows


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
    if lab.grafana_url:
        return lab.grafana_url
    message = f"the Grafana image {image} is not on this Docker engine, so the compose lab runs without Grafana"
    if os.environ.get("LAB_REQUIRE_GRAFANA") == "1":
        pytest.fail(f"{message}, and LAB_REQUIRE_GRAFANA=1 requires it")
    pytest.skip(f"{message}; set LAB_REQUIRE_GRAFANA=1 to make this a failure")
