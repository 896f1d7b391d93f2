"""Tests that need a tool this machine may lack skip with a message naming it, or fail where CI requires it."""

from __future__ import annotations

import os

import pytest

from lab.errors import MissingTool
from lab.processes import find_tool


def require(tool: str, package: str, variable: str) -> str:
    """The tool's path; else skip (naming the Debian package), or fail when `variable`=1 (as in CI)."""
    try:
        return find_tool(tool, package)
    except MissingTool as missing:
        if os.environ.get(variable) == "1":
            pytest.fail(f"{missing}, and {variable}=1 requires it")
        pytest.skip(f"{missing}; set {variable}=1 to make this a failure")


def promtool() -> str:
    return require("promtool", "prometheus", "LAB_REQUIRE_PROMETHEUS")


def prometheus() -> str:
    return require("prometheus", "prometheus", "LAB_REQUIRE_PROMETHEUS")


def redis_server() -> str:
    return require("redis-server", "redis-server", "LAB_REQUIRE_REDIS")
