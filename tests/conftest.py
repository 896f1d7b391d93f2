"""Shared test setup: tier markers from folders, trained models once per run, and the no-silent-skip rule."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Importing locust monkey-patches sockets, threads and sleep with gevent unless this is set: the unit tests
# import the lab's Locust plugin, and the rest of this process must keep real threads. Locust processes the
# tests start get an environment without it (tests/support/processes.py).
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"

from playwright.sync_api import Browser

from lab.browser import browser
from lab.compose import GRAFANA_IMAGE
from model_api.train import train
from tests.support.screens import require_chromium

# Each tier's timeout per test, fixture setup included (a module's shared lab starts in its first test). Modules
# whose tests or fixtures run longer say so with their own `pytestmark = pytest.mark.timeout(...)`.
TIERS = {"unit": 60, "integration": 180, "compose": 600}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from its folder (so `pytest -m unit` runs the fast tier) and, unless it has
    its own, the tier's timeout."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier, seconds in TIERS.items():
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
                if item.get_closest_marker("timeout") is None:
                    item.add_marker(pytest.mark.timeout(seconds))


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Grafana's image cannot reach every machine (no registry here): its tests may skip, naming the image, unless
    # LAB_REQUIRE_GRAFANA=1 turns that skip into a failure.
    grafana_image_missing = "grafana" in report.keywords and GRAFANA_IMAGE in str(report.longrepr)
    if report.skipped and not grafana_image_missing:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets LAB_NO_SKIP=1: there, a skipped test means a tier did not run, which must not pass unnoticed.
    if os.environ.get("LAB_NO_SKIP") == "1" and _skipped:
        print(f"\nLAB_NO_SKIP=1 but {len(_skipped)} test(s) were skipped:\n  " + "\n  ".join(_skipped))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium for a module's browser tests (skips naming it where it is missing, or fails under
    LAB_REQUIRE_BROWSER=1)."""
    require_chromium()
    with browser() as opened:
        yield opened


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both models trained once for the whole run, in a folder of its own."""
    out = tmp_path_factory.mktemp("artifacts")
    train(out)
    return out
