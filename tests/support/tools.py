"""Tests that need a tool this machine may lack skip with a message naming it, or fail where CI requires it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from lab.bentoml_service import bentoml_program
from lab.errors import LabError, MissingTool, MissingVirtualenv
from lab.processes import find_tool


def skip_or_fail(missing: LabError, variable: str) -> NoReturn:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{missing}, and {variable}=1 requires it")
    pytest.skip(f"{missing}; set {variable}=1 to make this a failure")


def require(tool: str, package: str, variable: str) -> str:
    """The tool's path; else skip (naming the Debian package), or fail when `variable`=1 (as in CI)."""
    try:
        return find_tool(tool, package)
    except MissingTool as missing:
        skip_or_fail(missing, variable)


def promtool() -> str:
    return require("promtool", "prometheus", "LAB_REQUIRE_PROMETHEUS")


def prometheus() -> str:
    return require("prometheus", "prometheus", "LAB_REQUIRE_PROMETHEUS")


def redis_server() -> str:
    return require("redis-server", "redis-server", "LAB_REQUIRE_REDIS")


def bentoml() -> Path:
    """The BentoML service's program; else skip (naming `make bentoml-install`), or fail if LAB_REQUIRE_BENTOML=1."""
    try:
        return bentoml_program()
    except MissingVirtualenv as missing:
        skip_or_fail(missing, "LAB_REQUIRE_BENTOML")


def host_exporters() -> None:
    """Debian's node and process exporters (a lab pointed at another service runs them), else skip or fail."""
    for package in ("prometheus-node-exporter", "prometheus-process-exporter"):
        require(package, package, "LAB_REQUIRE_PROMETHEUS")
