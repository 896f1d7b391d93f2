"""The lab on a real Docker engine for the compose tier: the experiment runner's compose_lab, with the tiers'
skip rule (skip naming Docker where no engine answers, fail where LAB_REQUIRE_DOCKER=1)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from experiments import stack
from experiments.stack import GRAFANA_IMAGE, ComposeLab, image_present

__all__ = ["GRAFANA_IMAGE", "ComposeLab", "build_images", "image_present", "require_docker", "running_lab"]


def require_docker() -> None:
    """Skip naming Docker when it cannot run the lab here; fail instead when LAB_REQUIRE_DOCKER=1 (as in CI)."""
    problem = stack.docker_problem()
    if problem is None:
        return
    message = f"Docker: {problem} (here: run ../shared/ci/offline-docker from the project root)"
    if os.environ.get("LAB_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{message}, and LAB_REQUIRE_DOCKER=1 requires it")
    pytest.skip(f"{message}; set LAB_REQUIRE_DOCKER=1 to make this a failure")


def build_images() -> None:
    require_docker()
    stack.build_images()


@contextmanager
def running_lab(project: str, **options: Any) -> Iterator[ComposeLab]:
    """compose_lab with its reports in a temporary folder of the test's own."""
    require_docker()
    with (
        tempfile.TemporaryDirectory(prefix=f"{project}-") as tmp,
        stack.compose_lab(project, Path(tmp) / "reports", **options) as lab,
    ):
        yield lab
