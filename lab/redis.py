"""Redis for the shared answer cache, natively: Debian's redis-server on a free 127.0.0.1 port, with no
persistence (the cache is only a cache), and the ways a test breaks it: killed, or stopped so that it hangs."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from lab.errors import ProcessExited
from lab.polling import wait_for
from lab.ports import free_port
from lab.processes import find_tool, stop


@dataclass
class RunningRedis:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        """What LAB_REDIS_URL says to reach it."""
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        """True when it answers; ProcessExited with its log once it has exited."""
        if self.process.poll() is not None:
            raise ProcessExited(f"redis-server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        with redis.Redis.from_url(self.url, socket_timeout=1) as client:
            return bool(client.ping())

    def hang(self) -> None:
        """Stop the process (SIGSTOP): the kernel still accepts connections, and nothing answers them."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Gone at once, as a crashed Redis: connections to its port are refused."""
        self.resume()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def start_redis(workdir: Path, port: int | None = None) -> RunningRedis:
    """Launch redis-server on `port` (a free one if None), not yet answering."""
    binary = find_tool("redis-server", "redis-server")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"redis-{port}.log"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return RunningRedis(port, process, log)


@contextmanager
def running_redis(workdir: Path, port: int | None = None) -> Iterator[RunningRedis]:
    """redis-server answering on 127.0.0.1 until the block ends."""
    server = start_redis(workdir, port)
    try:
        wait_for(server.ping, 30, "redis-server to answer")
        yield server
    finally:
        server.resume()  # a stopped process would not act on the SIGTERM
        stop(server.process)
