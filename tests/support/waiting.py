"""Poll for a condition with a deadline: the only way tests here wait for anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call `condition` until it returns something truthy, and return that; fail naming `what` at the deadline.

    Exceptions from `condition` count as "not yet", except AssertionError, which fails at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except AssertionError:
            raise  # the condition saw that waiting is pointless (the process died): fail now
        except Exception as error:  # not ready yet: refused connections, missing files...
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last: {last_error!r})" if last_error else "")
    )
