"""Tests that need a tool this machine may lack skip with a message naming it, or fail where CI requires it."""

from __future__ import annotations

import os
import shutil

import pytest


def require(tool: str, package: str, variable: str) -> str:
    """The tool's path; else skip (naming the Debian package), or fail when `variable`=1 (as in CI)."""
    path = shutil.which(tool)
    if path:
        return path
    message = f"{tool} is not installed (Debian package: {package})"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message}, and {variable}=1 requires it")
    pytest.skip(f"{message}; set {variable}=1 to make this a failure")
