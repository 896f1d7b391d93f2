"""The lab's three screens in a real browser: Locust's web UI, Prometheus' pages and Grafana's dashboard, driven
by Playwright through Debian's chromium (launched by path: Playwright's own browser download needs the internet).
The browser tier and `make screenshots` both look at the lab through these."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from lab.grafana import panels, substitute
from lab.polling import wait_for
from lab.processes import find_tool
from lab.stack import Lab

VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 30_000  # any one step in a page: a click, a field, a table row


def chromium() -> str:
    """Debian's chromium, else MissingTool naming its package."""
    return find_tool("chromium", "chromium")


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium())
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return page


def camel(name: str) -> str:
    """A Locust option's name as its start form names the field: slo_ms -> sloMs."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


class LocustScreen:
    """Locust's web UI as a learner uses it: the start form, the header, the tabs, Start and Stop."""

    def __init__(self, page: Page):
        self.page = page

    def header(self) -> dict[str, str]:
        """The header's figures: Host, Status, Workers, RPS, Failures."""
        lines = [line.strip() for line in self.page.locator("header").inner_text().splitlines() if line.strip()]
        return dict(zip(lines[::2], lines[1::2], strict=False))

    def form_values(self) -> dict[str, str]:
        """Every named field of the start form (inputs and selects) with its value, the custom parameters'
        section opened."""
        custom = self.page.get_by_role("button", name="Custom parameters")
        if custom.get_attribute("aria-expanded") != "true":
            custom.click()
        self.page.locator("input[name=sloMs]").wait_for()
        fields = self.page.locator("input[name]:not([type=checkbox]), select[name]").all()
        return {name: field.input_value() for field in fields if (name := field.get_attribute("name"))}

    def start(self, users: int, spawn_rate: float) -> None:
        self.page.get_by_label("Number of users (peak concurrency)").fill(str(users))
        self.page.get_by_label("Ramp up (users started/second)").fill(str(spawn_rate))
        self.page.get_by_role("button", name="Start", exact=True).click()
        self.page.get_by_role("tab", name="Statistics").wait_for()

    def swarm(
        self, users: int, workers: int, spawn_rate: float | None = None, requests: int = 30
    ) -> list[dict[str, str]]:
        """A learner's swarm: wait for the workers to join, fill users and spawn rate (all at once unless given),
        press Start; the statistics table once it has counted `requests` /classify requests."""
        wait_for(lambda: self.header().get("Workers") == str(workers), 90, f"the header to count {workers} workers")
        self.start(users=users, spawn_rate=spawn_rate or users)

        def classify_counted() -> list[dict[str, str]] | None:
            rows = self.statistics()
            classify = [row for row in rows if row.get("Name") == "/classify"]
            return rows if classify and int(classify[0]["# Requests"]) >= requests else None

        return wait_for(classify_counted, 60, f"{requests} /classify requests in the statistics table", interval=1)

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()

    def statistics(self) -> list[dict[str, str]]:
        """The statistics table's rows, each a dict by column heading (the Aggregated row included)."""
        self.tab("Statistics")
        return self.table()

    def failures(self) -> list[dict[str, str]]:
        """The Failures tab's rows (# Failures, Method, Name, Message, First Seen, Last Seen); call it once the
        statistics count a failure, since the tab draws no table before."""
        self.tab("Failures")
        return self.table()

    def table(self) -> list[dict[str, str]]:
        """The open tab's table, each row a dict by column heading."""
        table = self.page.locator("table").first
        table.wait_for()
        heads = [cell.inner_text().strip() for cell in table.locator("thead th").all()]
        return [
            dict(zip(heads, [cell.inner_text().strip() for cell in row.locator("td").all()], strict=False))
            for row in table.locator("tbody tr").all()
        ]

    def charts_drawn(self) -> int:
        """How many charts the Charts tab draws (ECharts instances with a canvas)."""
        self.tab("Charts")
        charts = self.page.locator("[_echarts_instance_] canvas")
        charts.first.wait_for()
        return charts.count()

    def stop(self) -> None:
        self.page.get_by_role("button", name="Stop", exact=True).click()

    def status_once_stopped(self) -> str:
        """The header's status after Stop, once Locust's API says the swarm stopped. Locust's page (2.47) refreshes
        its figures only while the swarm spawns or runs: when its refresh lands in the short STOPPING state (the
        master waiting for its workers), the header keeps saying STOPPING until the page is reloaded
        (locust#2400). A learner reloads then, as docs/troubleshooting.md says; so does this."""
        status = self.header().get("Status", "")
        if status == "STOPPING":
            self.page.reload()
            self.page.locator("header").wait_for()
            status = self.header().get("Status", "")
        return status


def prometheus_page(url: str, name: str) -> str:
    """The address of one of Prometheus' pages (targets, alerts). Prometheus 3 serves them at the root; Debian's
    2.x build serves its classic UI under /classic, where its home redirects."""
    home = httpx2.get(f"{url}/", timeout=10, follow_redirects=False)
    classic = "/classic/" in home.headers.get("location", "")
    return f"{url}{'/classic' if classic else ''}/{name}"


def firing_verdict_alert(lab: Lab, timeout: float = 120) -> str:
    """The name of the alert of the verdict Prometheus names (one at a time, `load-generator-saturated` included)."""

    def firing() -> str | None:
        alerts = lab.query('ALERTS{alertstate="firing", alertname=~"Lab.*"}')
        return alerts[0]["metric"]["alertname"] if alerts else None

    return wait_for(firing, timeout, "a verdict's alert to fire", interval=2)


class PrometheusScreen:
    """Prometheus' own pages: which targets are up, and what an alert says."""

    def __init__(self, page: Page, url: str):
        self.page = page
        self.url = url

    def targets(self) -> dict[str, tuple[int, int]]:
        """Each scrape pool on the targets page with its targets up and in all, e.g. {"model-api": (1, 1)}."""
        self.page.goto(prometheus_page(self.url, "targets"))
        self.page.get_by_text(re.compile(r"\d+\s*/\s*\d+\s+up")).first.wait_for()
        text = self.page.locator("body").inner_text()
        pools = re.findall(r"^\s*(\S+)\s*\(?(\d+)\s*/\s*(\d+)\s+up", text, re.MULTILINE)
        return {pool: (int(up), int(total)) for pool, up, total in pools}

    def alert_text(self, alertname: str) -> str:
        """The alerts page with `alertname` opened and its annotations shown, as a learner reads it."""
        self.page.goto(prometheus_page(self.url, "alerts"))
        show = self.page.get_by_text("Show annotations")
        if show.count():
            show.first.click()
        self.page.get_by_text(alertname).first.click()
        return self.page.locator("body").inner_text()


class GrafanaScreen:
    """Grafana as an anonymous Viewer meets it: the home page (the lab's dashboard), its panels, and the same
    panels' queries through Grafana's own query API (/api/ds/query), as its panels send them."""

    def __init__(self, page: Page, url: str):
        self.page = page
        self.url = url

    def title(self) -> str:
        """The title of the dashboard the home page opens, once its Verdict panel is drawn."""
        self.page.goto(f"{self.url}/")
        self.panel("Verdict").wait_for()
        return self.page.title().split(" - ")[0]

    def login_form_shown(self) -> bool:
        return self.page.locator("input[name=user]").count() > 0

    def panel(self, title: str) -> Locator:
        """A panel by its title: the container (data-viz-panel-key, Grafana 11+) that holds its header."""
        header = self.page.get_by_test_id(f"data-testid Panel header {title}")
        return self.page.locator("[data-viz-panel-key]", has=header)

    def stat_text(self, title: str) -> str:
        """What a stat panel shows, its title left out."""
        lines = [line.strip() for line in self.panel(title).inner_text().splitlines()]
        return " ".join(line for line in lines if line and line != title)

    def panels_without_data(self, dashboard: dict, values: dict[str, str], minutes: int = 5) -> dict[str, str]:
        """{panel [refId]: why} for every query of the dashboard that Grafana answers with an error or without a
        single value over the last `minutes`; `values` fills in the template variables (see lab.grafana)."""
        failed = {}
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                name = f"{panel['title']} [{target['refId']}]"
                query = {
                    "refId": target["refId"],
                    "datasource": target["datasource"],
                    "expr": substitute(target["expr"], values),
                    "instant": bool(target.get("instant")),
                    "range": not target.get("instant"),
                    "intervalMs": 5000,
                    "maxDataPoints": 300,
                }
                answer = httpx2.post(
                    f"{self.url}/api/ds/query",
                    json={"queries": [query], "from": f"now-{minutes}m", "to": "now"},
                    timeout=30,
                )
                result = answer.json().get("results", {}).get(target["refId"], {}) if answer.is_success else {}
                frames = result.get("frames", [])
                if not answer.is_success or result.get("error"):
                    failed[name] = result.get("error") or f"HTTP {answer.status_code}: {answer.text[:200]}"
                elif not any(column for frame in frames for column in frame.get("data", {}).get("values", [])):
                    failed[name] = "no data"
        return failed


def screenshot(page: Page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
