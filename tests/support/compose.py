"""The lab on a real Docker engine for the compose tier: lab.compose with the tiers' skip rule (skip naming
Docker where no engine answers, fail where LAB_REQUIRE_DOCKER=1)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lab import compose
from lab.compose import ComposeLab


def require_docker() -> None:
    """Skip naming Docker when it cannot run the lab here; fail instead when LAB_REQUIRE_DOCKER=1 (as in CI)."""
    problem = compose.docker_problem()
    if problem is None:
        return
    message = f"Docker: {problem} (here: run ../shared/ci/offline-docker from the project root)"
    if os.environ.get("LAB_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{message}, and LAB_REQUIRE_DOCKER=1 requires it")
    pytest.skip(f"{message}; set LAB_REQUIRE_DOCKER=1 to make this a failure")


def build_images() -> None:
    require_docker()
    compose.build_images()


@contextmanager
def running_lab(project: str, **options: Any) -> Iterator[ComposeLab]:
    """compose_lab with its reports in a temporary folder of the test's own."""
    require_docker()
    with (
        tempfile.TemporaryDirectory(prefix=f"{project}-") as tmp,
        compose.compose_lab(project, Path(tmp) / "reports", **options) as lab,
    ):
        yield lab
