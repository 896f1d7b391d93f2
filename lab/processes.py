"""Processes the lab starts: their environment, their cores, their CPU time, and a clean stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess

import psutil

from lab.errors import MissingTool


def pinned(command: list[str], cores: int | str | None) -> list[str]:
    """`command` run on the given CPU cores with taskset (a core, or a list such as "0-1"), or as is for None."""
    return command if cores is None else ["taskset", "-c", str(cores), *command]


def clean_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment without any LAB_ knob a developer may have exported, plus `overrides`
    (an override of None removes the variable)."""
    dropped = {"PROMETHEUS_MULTIPROC_DIR", "LOCUST_SKIP_MONKEY_PATCH"}  # the latter is the test process's own
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_") and k not in dropped}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def find_tool(tool: str, package: str) -> str:
    """The program's path, else MissingTool naming the Debian package that brings it."""
    path = shutil.which(tool)
    if not path:
        raise MissingTool(tool, package)
    return path


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and every process below it that is still running."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def stop(process: subprocess.Popen[bytes], timeout: float = 40) -> int:
    """SIGTERM (gunicorn's and Locust's graceful stop), then SIGKILL to the whole group if it does not exit in
    time; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return process.returncode
