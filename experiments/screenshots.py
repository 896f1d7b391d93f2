"""The guide's screenshots, taken from a real run: the lab brought up, a scenario swarmed from Locust's own form
in a real browser (Debian's chromium), and each screen captured as a learner sees it.

    make screenshots                                  # the compose lab, the cpu-bound scenario
    make screenshots SCREENSHOTS_ARGS="--native"      # the native lab (no Docker)
    python -m experiments.screenshots --help

Writes docs/img/screens/: locust-start.png (the start form), locust-statistics.png and locust-charts.png (under
the swarm), prometheus-alert.png (the verdict's alert with its summary) and, where the Grafana image is present,
grafana-dashboard.png; and captured.md, which says where and from what each picture came. No picture is drawn by
hand: a screen the lab could not show (Grafana without its image) is named in captured.md, not invented.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.browser import LocustScreen, PrometheusScreen, browser, firing_verdict_alert, new_page, screenshot
from lab.compose import GRAFANA_IMAGE, compose_lab
from lab.errors import LabError
from lab.markdown import table
from lab.native import native_lab
from lab.paths import REPO
from lab.stack import Lab

DEFAULT_OUT = REPO / "docs" / "img" / "screens"
LOCUST_WORKERS = 2


def say(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


@contextmanager
def running(native: bool, scenario: str, workdir: Path) -> Iterator[Lab]:
    if native:
        with native_lab(workdir, scenario, locust_workers=LOCUST_WORKERS) as lab:
            yield lab
    else:
        with compose_lab("lab-screens", workdir / "reports", scenario, scale={"locust-worker": LOCUST_WORKERS}) as lab:
            yield lab


def capture(lab: Lab, out: Path, users: int) -> tuple[dict[str, str], str]:
    """Every screen of a swarm, {file: what it shows}; and the browser's version."""
    shots = {}
    with browser() as chromium:
        locust = LocustScreen(new_page(chromium, lab.locust_url))
        locust.form_values()  # opens the custom parameters: the lab's own fields
        shots[screenshot(locust.page, out / "locust-start.png").name] = "Locust's start form, the lab's fields opened"
        say(f"swarming {users} users from Locust's form")
        locust.swarm(users, LOCUST_WORKERS)
        try:
            alertname = firing_verdict_alert(lab)
            say(f"{alertname} fired")
            locust.statistics()
            shots[screenshot(locust.page, out / "locust-statistics.png").name] = "Locust's statistics under the swarm"
            locust.charts_drawn()
            shots[screenshot(locust.page, out / "locust-charts.png").name] = "Locust's charts under the swarm"
            prometheus = PrometheusScreen(new_page(chromium, lab.prometheus_url), lab.prometheus_url)
            prometheus.alert_text(alertname)
            shots[screenshot(prometheus.page, out / "prometheus-alert.png").name] = (
                f"Prometheus' alerts page: {alertname} with its summary"
            )
            if lab.grafana_url:
                grafana = new_page(chromium, f"{lab.grafana_url}/")
                grafana.wait_for_load_state("networkidle")
                shots[screenshot(grafana, out / "grafana-dashboard.png").name] = "Grafana: the lab's dashboard"
        finally:
            locust.stop()
        return shots, chromium.version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cpu-bound", help="the scenario to run (default: %(default)s)")
    parser.add_argument("--users", type=int, default=20, help="users swarmed from the form (default: %(default)s)")
    parser.add_argument("--native", action="store_true", help="the native lab instead of the compose lab")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the pictures go (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.users < 1:
        parser.error(f"--users must be at least 1, not {args.users}")
    try:
        with (
            tempfile.TemporaryDirectory(prefix="lab-screens-") as tmp,
            running(args.native, args.scenario, Path(tmp)) as lab,
        ):
            say(f"the {'native' if args.native else 'compose'} lab is up, scenario {args.scenario}")
            shots, chromium_version = capture(lab, args.out, args.users)
            grafana = lab.grafana_url is not None
            prometheus_version = lab.prometheus.build_info()["version"]
    except LabError as error:
        print(f"screenshots: {error}", file=sys.stderr)
        return 1
    where = "the native lab (`make api`, `make locust`, Debian's Prometheus)" if args.native else "the compose lab"
    lines = [
        "# Where these screenshots came from",
        "",
        f"Taken by `make screenshots` on {datetime.date.today().isoformat()}: {where}, the {args.scenario} scenario,"
        f" {args.users} users started from Locust's form in Debian's chromium.",
        "",
        table(["picture", "what it shows"], [[name, what] for name, what in shots.items()]),
        "",
        f"Prometheus {prometheus_version}, chromium {chromium_version}. A Prometheus 2 draws the classic pages shown"
        " here; Prometheus 3 draws newer ones (click the alert to unfold it), which the lab's browser tests have"
        " not driven yet: no Prometheus 3 could run where they were written.",
    ]
    if not grafana:
        lines += ["", f"No Grafana picture: its image ({GRAFANA_IMAGE}) was not on this machine's Docker engine."]
    (args.out / "captured.md").write_text("\n".join(lines) + "\n")
    say(f"wrote {len(shots)} pictures and captured.md to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
