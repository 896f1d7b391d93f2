"""Poll for a condition with a deadline: the only way the lab and its tests wait for anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lab.errors import LabError, WaitTimeout

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call `condition` until it returns something truthy, and return that; WaitTimeout naming `what` at the
    deadline.

    Exceptions from `condition` count as "not yet" (refused connections, missing files...), except a LabError or
    an AssertionError: the condition saw that waiting is pointless (a process died), so they fail at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (LabError, AssertionError):
            raise
        except Exception as error:
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise WaitTimeout(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last: {last_error!r})" if last_error else "")
    )
