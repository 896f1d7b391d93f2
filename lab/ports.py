"""Free ports on 127.0.0.1, for processes and compose projects that must not collide."""

from __future__ import annotations

import random
import socket

from lab.errors import LabError


def free_port() -> int:
    """A port the kernel says is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_range(size: int = 1) -> tuple[int, int]:
    """`size` consecutive free ports on 127.0.0.1 (first, last)."""
    for _ in range(200):
        first = random.randint(20000, 60000 - size)
        if all(port_is_free(port) for port in range(first, first + size)):
            return first, first + size - 1
    raise LabError(f"no {size} consecutive free ports on 127.0.0.1")
